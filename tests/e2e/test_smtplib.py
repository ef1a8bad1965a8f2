"""ternd with the built-in default configuration, driven by Python's smtplib."""

import email
import email.policy
import os
import re
from email.message import EmailMessage

from conftest import SMTPConn, all_stored, crlf_to_lf, read_stored, wait_until

FROM = "sender@example.net"


def parse(stored):
    return email.message_from_bytes(stored.message, policy=email.policy.default)


def only_message(srv, addr):
    files = srv.wait_mail(addr, 1)
    assert len(files) == 1, files
    return read_stored(files[0])


def test_greeting_and_quit(ternd):
    with SMTPConn(ternd.host, ternd.port) as c:
        r = c.expect(220)
        assert re.match(r"^\S+ ESMTP tern\b", r.lines[0]), r
        c.cmd("QUIT", 221)
        assert c.is_closed(), "connection still open after 221"


def test_ehlo_capabilities(ternd):
    with ternd.smtp() as s:
        code, _ = s.ehlo("client.example")
        assert code == 250
        for ext in ("size", "pipelining", "8bitmime", "enhancedstatuscodes",
                    "smtputf8", "chunking", "help"):
            assert s.has_extn(ext), "EHLO lacks %s: %r" % (ext, s.esmtp_features)
        size = s.esmtp_features["size"]
        assert size == "" or size.isdigit(), size


def test_headers_and_trace(ternd):
    msg = EmailMessage()
    msg["From"] = "Sender Name <%s>" % FROM
    msg["To"] = "Alice <alice@example.com>"
    msg["Cc"] = "bob@example.org"
    msg["Subject"] = "Hello from smtplib"
    msg["Message-ID"] = "<hdr-1@example.net>"
    msg.set_content("Hi Alice,\nthis is a test.\n")
    assert msg["MIME-Version"] == "1.0"
    with ternd.smtp() as s:
        refused = s.send_message(msg)
    assert refused == {}
    for rcpt in ("alice@example.com", "bob@example.org"):
        st = only_message(ternd, rcpt)
        assert st.return_path == "<%s>" % FROM
        assert st.delivered_to == rcpt
        got = parse(st)
        assert got["Subject"] == "Hello from smtplib"
        assert got["From"] == "Sender Name <%s>" % FROM
        assert got["To"] == "Alice <alice@example.com>"
        assert got["Cc"] == "bob@example.org"
        assert got["MIME-Version"] == "1.0"
        assert got["Message-ID"] == "<hdr-1@example.net>"
        assert got.get_content() == "Hi Alice,\nthis is a test.\n"
        assert b"\r" not in st.raw, "stored file must use LF line ends"
        # exactly one Received: header ahead of the message, added by ternd
        assert st.message.count(b"\nReceived: ") == 0


def test_message_stored_byte_for_byte(ternd):
    raw = (b"From: sender@example.net\r\nTo: alice@example.com\r\n"
           b"Subject: exact\r\nMessage-ID: <exact@example.net>\r\n\r\n"
           b"line 1\r\n  indented line\r\n\r\nlast line\r\n")
    with ternd.smtp() as s:
        s.sendmail(FROM, ["alice@example.com"], raw)
    st = only_message(ternd, "alice@example.com")
    assert st.message == crlf_to_lf(raw)


def test_attachment_roundtrip(ternd):
    blob = bytes(range(256)) * 64 + os.urandom(4096)
    msg = EmailMessage()
    msg["From"] = FROM
    msg["To"] = "alice@example.com"
    msg["Subject"] = "with attachment"
    msg.set_content("See the attached file.\n")
    msg.add_attachment(blob, maintype="application", subtype="octet-stream",
                       filename="data.bin")
    with ternd.smtp() as s:
        s.send_message(msg)
    got = parse(only_message(ternd, "alice@example.com"))
    assert got.is_multipart()
    atts = list(got.iter_attachments())
    assert len(atts) == 1
    assert atts[0].get_filename() == "data.bin"
    assert atts[0].get_content() == blob


def test_bcc_only_in_envelope(ternd):
    msg = EmailMessage()
    msg["From"] = FROM
    msg["To"] = "alice@example.com"
    msg["Bcc"] = "hidden@example.com"
    msg["Subject"] = "bcc test"
    msg.set_content("for alice, and secretly for hidden\n")
    with ternd.smtp() as s:
        s.send_message(msg)  # smtplib puts Bcc in RCPT TO and drops the header
    for rcpt in ("alice@example.com", "hidden@example.com"):
        st = only_message(ternd, rcpt)
        assert parse(st)["Subject"] == "bcc test"
        assert b"\nbcc:" not in st.raw.lower() and not st.raw.lower().startswith(b"bcc:")
        assert b"hidden@example.com" not in st.message


def test_8bit_utf8_body(ternd):
    body = "Grüße aus Köln — ½ € ✓ 日本語\n"
    raw = ("From: sender@example.net\r\nTo: alice@example.com\r\n"
           "Subject: 8bit\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n" + body.replace("\n", "\r\n")).encode()
    with ternd.smtp() as s:
        s.ehlo()
        s.sendmail(FROM, ["alice@example.com"], raw, mail_options=["BODY=8BITMIME"])
    st = only_message(ternd, "alice@example.com")
    assert st.message == crlf_to_lf(raw)
    assert parse(st).get_content() == body


def test_leading_dots_survive(ternd):
    raw = (b"From: sender@example.net\r\nTo: alice@example.com\r\nSubject: dots\r\n\r\n"
           b".hidden line\r\n..two dots\r\n.\r\nx\r\n. \r\n.end\r\n")
    with ternd.smtp() as s:
        s.sendmail(FROM, ["alice@example.com"], raw)  # smtplib dot-stuffs
    st = only_message(ternd, "alice@example.com")
    assert st.message == crlf_to_lf(raw)


def test_five_mib_message(ternd):
    line = (b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789"
            b"\r\n")
    n = (5 * 1024 * 1024) // len(line) + 1
    body = b"".join(b"%06d" % i + line for i in range(n))
    raw = (b"From: sender@example.net\r\nTo: alice@example.com\r\nSubject: big\r\n\r\n"
           + body)
    assert len(raw) > 5 * 1024 * 1024
    with ternd.smtp(timeout=60) as s:
        s.sendmail(FROM, ["alice@example.com"], raw)
    st = only_message(ternd, "alice@example.com")
    assert st.message == crlf_to_lf(raw)


def test_fifty_recipients_one_copy_each(ternd):
    rcpts = ["user%02d@example.com" % i for i in range(25)] + \
            ["user%02d@example.org" % i for i in range(25)]
    raw = (b"From: sender@example.net\r\nTo: undisclosed-recipients:;\r\n"
           b"Subject: fan-out\r\n\r\nfifty\r\n")
    with ternd.smtp() as s:
        refused = s.sendmail(FROM, rcpts, raw)
    assert refused == {}
    for r in rcpts:
        ternd.wait_mail(r, 1)
    for r in rcpts:
        files = ternd.wait_mail(r, 1)
        assert len(files) == 1, (r, files)
        st = read_stored(files[0])
        assert st.delivered_to == r
        assert st.message == crlf_to_lf(raw)
    assert len(all_stored(ternd.data_dir)) == 50


def test_rset_between_messages(ternd):
    with ternd.smtp() as s:
        s.ehlo()
        assert s.mail(FROM)[0] == 250
        assert s.rcpt("dropped@example.com")[0] == 250
        assert s.rset()[0] == 250
        s.sendmail(FROM, ["first@example.com"],
                   b"Subject: one\r\n\r\nfirst\r\n")
        assert s.rset()[0] == 250
        s.sendmail("other@example.net", ["second@example.com"],
                   b"Subject: two\r\n\r\nsecond\r\n")
    a = only_message(ternd, "first@example.com")
    b = only_message(ternd, "second@example.com")
    assert a.message == b"Subject: one\n\nfirst\n"
    assert b.message == b"Subject: two\n\nsecond\n"
    assert b.return_path == "<other@example.net>"
    # both messages are delivered; the reset transaction left nothing behind
    assert not ternd.mailbox("dropped@example.com").exists() or \
        not list(ternd.mailbox("dropped@example.com").iterdir())
    assert len(all_stored(ternd.data_dir)) == 2


def test_smtputf8_address(ternd):
    rcpt = "jörg@bücher.example"
    sender = "δοκιμή@example.net"
    raw = ("From: %s\r\nTo: %s\r\nSubject: utf8 address\r\n"
           "Message-ID: <utf8addr@example.net>\r\n\r\nhallo\r\n" % (sender, rcpt)).encode()
    with ternd.smtp() as s:
        s.ehlo()
        assert s.has_extn("smtputf8")
        refused = s.sendmail(sender, [rcpt], raw, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert refused == {}

    def find():
        for p in all_stored(ternd.data_dir):
            if b"<utf8addr@example.net>" in p.read_bytes():
                return p
        return None
    path = wait_until(find, timeout=10, what="the SMTPUTF8 message")
    st = read_stored(path)
    assert st.message == crlf_to_lf(raw)
    assert st.delivered_to == rcpt
    assert st.return_path == "<%s>" % sender
