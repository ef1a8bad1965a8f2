"""`tern sendmail -bs` (and `sendmail -bs`): SMTP on stdin/stdout, spoken by a test
over pipes. Messages reach a test ternd's Maildirs over SMTP, or, with ternd stopped,
the maildrop (the 250 comes only after the file is in maildrop/new) and then ternd's
pickup. Replies are checked for RFC 5321 form (3 digits, CRLF, '-' continuations)."""

import os
import subprocess

import pytest

from conftest import BUILD, TERN, free_port, wait_for_mail, wait_until


class BS:
    """A `tern sendmail -bs` process and the SMTP dialogue over its pipes."""

    def __init__(self, *args, env=None, argv0=TERN, sub=("sendmail",)):
        e = {k: v for k, v in os.environ.items() if not k.startswith("TERN_")}
        e.update(env or {})
        self.p = subprocess.Popen([str(argv0), *sub, "-bs", *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def reply(self):
        """(code, [texts]) of one reply, however many lines."""
        lines = []
        while True:
            line = self.p.stdout.readline()
            assert line.endswith(b"\r\n"), "reply line %r not ended by CRLF" % line
            line = line[:-2].decode()
            assert len(line) >= 3 and line[:3].isdigit(), "bad reply line %r" % line
            assert len(line) == 3 or line[3] in " -", "bad reply line %r" % line
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return int(line[:3]), lines

    def cmd(self, line, want):
        self.send(line + "\r\n")
        code, text = self.reply()
        assert code == want, "%s: expected %d, got %d %r" % (line, want, code, text)
        return text

    def finish(self, timeout=30):
        self.p.stdin.close()
        rest = self.p.stdout.read()
        rc = self.p.wait(timeout)
        err = self.p.stderr.read().decode(errors="replace")
        self.p.stdout.close()
        self.p.stderr.close()
        return rc, rest, err


def env_for(t=None, drop=None):
    port = t.port if t is not None else free_port()
    e = {"TERN_SERVER": "127.0.0.1:%d" % port}
    if drop is not None:
        e["TERN_MAILDROP"] = str(drop)
    return e


def test_dialogue_delivers_with_dot_stuffing(ternd):
    bs = BS(env=env_for(ternd))
    code, text = bs.reply()
    assert code == 220 and "ESMTP" in text[0]
    ehlo = bs.cmd("EHLO client.test", 250)
    assert "PIPELINING" in ehlo and "8BITMIME" in ehlo
    assert not any(k.startswith(("STARTTLS", "AUTH")) for k in ehlo)
    bs.cmd("MAIL FROM:<cron@example.org>", 250)
    bs.cmd("RCPT TO:<b@example.com>", 250)
    bs.cmd("RCPT TO:<c@example.com>", 250)
    bs.cmd("DATA", 354)
    bs.send("Subject: piped\r\n\r\nfirst\r\n..leading dot\r\n...two dots\r\n"
            ". space\r\nlast\r\n.\r\n")
    code, text = bs.reply()
    assert code == 250 and text[0].startswith("2.0.0 Ok: queued as "), (code, text)
    qid = text[0].split()[-1]
    assert qid and qid != "as"
    bs.cmd("RSET", 250)
    bs.cmd("NOOP", 250)
    bs.cmd("QUIT", 221)
    rc, rest, err = bs.finish()
    assert rc == 0 and rest == b"", (rc, rest, err)
    for rcpt in ("b@example.com", "c@example.com"):
        (path,) = ternd.wait_mail(rcpt)
        raw = path.read_bytes()
        # unstuffed once; ". space" was not stuffed by the client, so RFC 5321
        # 4.5.2 drops its dot (Maildir files have LF line ends)
        raw = raw.replace(b"\r\n", b"\n")
        assert raw.endswith(b"\n\nfirst\n.leading dot\n..two dots\n space\nlast\n"), raw
        head = raw.split(b"\n\n", 1)[0]
        assert b"Subject: piped" in head
        # like `tern sendmail`: missing From, Date and Message-ID are added
        assert b"From: cron@example.org" in head
        assert b"Date: " in head and b"Message-ID: " in head
    assert "qid=%s event=accepted" % qid in ternd.log() or qid in ternd.log()


def test_protocol_errors_and_recovery(ternd):
    bs = BS(env=env_for(ternd))
    assert bs.reply()[0] == 220
    bs.cmd("RCPT TO:<b@example.com>", 503)   # RCPT before MAIL
    bs.cmd("DATA", 503)                      # DATA before MAIL
    bs.cmd("HELO client.test", 250)
    bs.cmd("MAIL FROM:<broken", 501)         # bad syntax
    bs.cmd("MAIL FROM:<a@example.org> BOGUS=1", 555)
    bs.cmd("FOO bar", 500)                   # unknown command
    bs.cmd("MAIL FROM:<a@example.org>", 250)
    bs.cmd("DATA", 503)                      # DATA before RCPT
    bs.cmd("MAIL FROM:<nested@example.org>", 503)
    bs.cmd("RCPT TO:<@:bad>", 501)
    bs.cmd("RSET", 250)
    bs.cmd("RCPT TO:<b@example.com>", 503)   # RSET ended the transaction
    bs.cmd("VRFY b@example.com", 252)
    bs.cmd("MAIL FROM:<>", 250)
    bs.cmd("RCPT TO:<bounce@example.com>", 250)
    bs.cmd("DATA", 354)
    bs.send("Subject: after errors\r\n\r\nbody\r\n.\r\n")
    assert bs.reply()[0] == 250
    bs.cmd("QUIT", 221)
    rc, _, err = bs.finish()
    assert rc == 0, err
    (path,) = ternd.wait_mail("bounce@example.com")
    assert b"Subject: after errors" in path.read_bytes()


def test_bare_lf_client_and_bdat(ternd):
    """Local programs often write LF; BDAT works as well."""
    bs = BS(env=env_for(ternd))
    assert bs.reply()[0] == 220
    bs.send("EHLO lf.test\n")
    assert bs.reply()[0] == 250
    bs.send("MAIL FROM:<lf@example.org>\nRCPT TO:<lf@example.com>\nDATA\n")
    assert [bs.reply()[0] for _ in range(3)] == [250, 250, 354]
    bs.send("Subject: lf\n\nline\n..dot\n.\n")
    assert bs.reply()[0] == 250
    body = b"Subject: chunked\r\n\r\nbdat body\r\n"
    bs.cmd("MAIL FROM:<lf@example.org>", 250)
    bs.cmd("RCPT TO:<chunk@example.com>", 250)
    bs.send(b"BDAT %d LAST\r\n" % len(body) + body)
    assert bs.reply()[0] == 250
    bs.cmd("QUIT", 221)
    assert bs.finish()[0] == 0
    (path,) = ternd.wait_mail("lf@example.com")
    raw = path.read_bytes()
    assert b"Subject: lf\n" in raw and raw.endswith(b"\nline\n.dot\n"), raw
    (path,) = ternd.wait_mail("chunk@example.com")
    assert path.read_bytes().endswith(b"\n\nbdat body\n")


def test_ternd_refusal_passed_on(ternd_factory, tmp_path):
    users = tmp_path / "users"
    users.write_text("alice\n")
    t = ternd_factory(config="local_domains = example.com\nusers = %s\n"
                             "[listener 127.0.0.1:{port}]\n" % users, listen=False)
    drop = tmp_path / "drop"
    bs = BS(env=env_for(t, drop))
    assert bs.reply()[0] == 220
    bs.cmd("EHLO c.test", 250)
    bs.cmd("MAIL FROM:<x@example.org>", 250)
    bs.cmd("RCPT TO:<alice@example.com>", 250)
    bs.cmd("RCPT TO:<nobody@example.com>", 250)  # ternd decides at the end
    bs.cmd("DATA", 354)
    bs.send("Subject: refused\r\n\r\nx\r\n.\r\n")
    code, text = bs.reply()
    assert code == 550 and text[0].startswith("5.1.1 "), (code, text)
    assert "nobody@example.com" in text[0]
    # the session goes on; a good message gets through
    bs.cmd("MAIL FROM:<x@example.org>", 250)
    bs.cmd("RCPT TO:<alice@example.com>", 250)
    bs.cmd("DATA", 354)
    bs.send("Subject: fine\r\n\r\ny\r\n.\r\n")
    assert bs.reply()[0] == 250
    bs.cmd("QUIT", 221)
    assert bs.finish()[0] == 0
    (path,) = t.wait_mail("alice@example.com")
    assert b"Subject: fine" in path.read_bytes()
    assert not drop.exists() or not list((drop / "new").iterdir())


def test_ternd_down_maildrop_then_pickup(ternd_factory, tmp_path):
    data = tmp_path / "var"
    drop = data / "maildrop"
    link = BUILD / "sendmail"
    bs = BS(env=env_for(None, drop), argv0=link, sub=())
    assert bs.reply()[0] == 220
    bs.cmd("EHLO c.test", 250)
    for i in range(2):
        bs.cmd("MAIL FROM:<cron@example.org>", 250)
        bs.cmd("RCPT TO:<root@example.com>", 250)
        bs.cmd("RCPT TO:<ops@example.com>", 250)
        bs.cmd("DATA", 354)
        bs.send("Subject: offline %d\r\n\r\n..dotted\r\n.\r\n" % i)
        code, text = bs.reply()
        assert code == 250 and "queued as maildrop/" in text[0], (code, text)
        # durable before the 250: the file is complete in new/, nothing left in tmp/
        name = text[0].rsplit("/", 1)[1]
        f = drop / "new" / name
        assert f.exists() and list((drop / "tmp").iterdir()) == []
        head, msg = f.read_bytes().split(b"\n\n", 1)
        assert head.split(b"\n") == [b"X-Tern-Sender: <cron@example.org>",
                                     b"X-Tern-Rcpt: <root@example.com>",
                                     b"X-Tern-Rcpt: <ops@example.com>"]
        assert b"Subject: offline %d\n" % i in msg and msg.endswith(b"\n.dotted\n")
    bs.cmd("QUIT", 221)
    assert bs.finish()[0] == 0
    t = ternd_factory(data_dir=data)
    for rcpt in ("root@example.com", "ops@example.com"):
        paths = wait_for_mail(data, rcpt, n=2)
        subjects = sorted(b"offline 0" in p.read_bytes() for p in paths)
        assert subjects == [False, True]
    wait_until(lambda: not list((drop / "new").iterdir()), what="maildrop emptied")
    assert t.proc.poll() is None


def test_eof_mid_data_hands_over_nothing(tmp_path):
    drop = tmp_path / "drop"
    bs = BS(env=env_for(None, drop))
    assert bs.reply()[0] == 220
    bs.cmd("MAIL FROM:<a@example.org>", 250)
    bs.cmd("RCPT TO:<b@example.com>", 250)
    bs.cmd("DATA", 354)
    bs.send("Subject: cut\r\n\r\npartial")
    rc, rest, err = bs.finish()
    assert rc == 0 and rest == b"", (rc, rest, err)
    assert not drop.exists() or not list((drop / "new").iterdir())


def test_too_many_errors_421():
    bs = BS(env=env_for(None))
    assert bs.reply()[0] == 220
    for _ in range(19):
        bs.cmd("BOGUS", 500)
    bs.send("BOGUS\r\n")
    assert bs.reply()[0] == 500
    assert bs.reply()[0] == 421
    rc, rest, _ = bs.finish()
    assert rc == 0 and rest == b""


@pytest.mark.parametrize("args", [["root@example.com"], ["-t"]])
def test_bs_refuses_recipient_arguments(args):
    bs = BS(*args)
    rc, out, err = bs.finish()
    assert rc == 64 and out == b"" and "-bs" in err
