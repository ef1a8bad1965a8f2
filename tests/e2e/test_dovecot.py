"""Mail that ternd stores is readable by a real IMAP server (Dovecot)."""

import email
import email.policy
import os
import time
from email.message import EmailMessage

from conftest import wait_for_maildir_files


def fetch_all(m):
    typ, _ = m.select("INBOX")
    assert typ == "OK"
    typ, data = m.search(None, "ALL")
    assert typ == "OK"
    out = []
    for num in data[0].split():
        typ, parts = m.fetch(num, "(RFC822)")
        assert typ == "OK"
        out.append(email.message_from_bytes(parts[0][1], policy=email.policy.default))
    return out


def test_dovecot_fixture_reads_handmade_maildir(dovecot):
    """The fixture itself: Dovecot serves a Maildir we wrote by hand."""
    dovecot.add_user("carol@example.org", "secret")
    md = dovecot.mailroot / "example.org" / "carol" / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "new" / ("%d.M1P1.test" % time.time())).write_bytes(
        b"From: a@example.net\nTo: carol@example.org\nSubject: hand made\n\nhello carol\n")
    m = dovecot.imap("carol@example.org")
    try:
        msgs = fetch_all(m)
    finally:
        m.logout()
    assert len(msgs) == 1
    assert msgs[0]["Subject"] == "hand made"
    assert msgs[0].get_content().replace("\r\n", "\n") == "hello carol\n"


def test_dovecot_wrong_password_refused(dovecot):
    import imaplib
    dovecot.add_user("carol@example.org", "secret")
    try:
        dovecot.imap("carol@example.org", "wrong")
    except imaplib.IMAP4.error:
        return
    raise AssertionError("login with a wrong password succeeded")


def test_ternd_mail_readable_by_imap(dovecot, ternd_factory):
    dovecot.add_user("alice@example.com", "pw-alice")
    srv = ternd_factory(data_dir=dovecot.data_dir)
    msg = EmailMessage()
    msg["From"] = "bob@example.net"
    msg["To"] = "alice@example.com"
    msg["Subject"] = "via imap %d" % os.getpid()
    msg["Message-ID"] = "<imap-%d@example.net>" % os.getpid()
    body = "Line one.\nLine two, with some text.\n"
    msg.set_content(body)
    with srv.smtp() as s:
        s.send_message(msg)
    wait_for_maildir_files(srv.mailbox("alice@example.com"), 1)
    m = dovecot.imap("alice@example.com")
    try:
        msgs = fetch_all(m)
    finally:
        m.logout()
    assert len(msgs) == 1
    got = msgs[0]
    assert got["Subject"] == msg["Subject"]
    assert got["Message-ID"] == msg["Message-ID"]
    assert got.get_content().replace("\r\n", "\n") == body
    assert got["Delivered-To"] == "alice@example.com"
