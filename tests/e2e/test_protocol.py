"""The SMTP dialogue byte by byte, over a raw socket: pipelining, errors, limits,
line-ending rules and smuggling, VRFY/EXPN/HELP, BDAT, QUIT."""

import re

import pytest

from conftest import all_stored, maildir_files, read_stored

STRICT = """\
[listener 127.0.0.1:{port}]
lenient_lf = no
"""

ENHANCED = re.compile(r"^\d\.\d{1,3}\.\d{1,3}\b")


def enhanced(r):
    m = ENHANCED.match(r.lines[0])
    assert m, "no enhanced status code in %r" % r
    return m.group(0)


def begin(srv, rcpts=("alice@example.com",)):
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@example.net>", 250)
    for r in rcpts:
        c.cmd("RCPT TO:<%s>" % r, 250)
    return c


def test_pipelined_transaction(ternd):
    c = ternd.connect()
    r = c.ehlo()
    assert "PIPELINING" in [x.split()[0].upper() for x in r.lines[1:]]
    c.send("MAIL FROM:<sender@example.net>\r\nRCPT TO:<alice@example.com>\r\n"
           "RCPT TO:<bob@example.org>\r\nDATA\r\n")
    assert [c.reply().code for _ in range(4)] == [250, 250, 250, 354]
    c.send("Subject: pipelined\r\n\r\nbody\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    c.close()
    for rcpt in ("alice@example.com", "bob@example.org"):
        st = read_stored(ternd.wait_mail(rcpt, 1)[0])
        assert st.message == b"Subject: pipelined\n\nbody\n"


def test_whole_session_in_one_write(ternd):
    c = ternd.connect()
    c.send("EHLO client.example\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.com>\r\n"
           "DATA\r\nSubject: burst\r\n\r\nall at once\r\n.\r\nQUIT\r\n")
    assert [c.reply().code for _ in range(6)] == [250, 250, 250, 354, 250, 221]
    assert c.is_closed()
    st = read_stored(ternd.wait_mail("alice@example.com", 1)[0])
    assert st.message == b"Subject: burst\n\nall at once\n"


def test_unknown_command(ternd):
    c = ternd.connect()
    r = c.cmd("FROBNICATE now", 500)
    assert enhanced(r).startswith("5.5.")
    c.cmd("NOOP", 250)


def test_sequence_errors(ternd):
    c = ternd.connect()
    c.ehlo()
    r = c.cmd("RCPT TO:<alice@example.com>", 503)
    assert enhanced(r).startswith("5.5.")
    c.cmd("DATA", 503)
    c.cmd("MAIL FROM:<sender@example.net>", 250)
    c.cmd("DATA", 503)
    c.cmd("MAIL FROM:<again@example.net>", 503)  # nested MAIL
    c.cmd("RCPT TO:<alice@example.com>", 250)
    c.cmd("RSET", 250)
    c.cmd("DATA", 503)
    c.cmd("QUIT", 221)


def test_bad_syntax(ternd):
    c = ternd.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@@example.net>", (501, 553))
    c.cmd("MAIL FROM:<sender@example.net>", 250)
    c.cmd("RCPT TO:<no-at-sign>", (501, 553))
    c.cmd("RCPT TO:<a@b@example.com>", (501, 553))
    c.cmd("RCPT TO:<alice@example.com> FOO=BAR", (501, 555))
    c.cmd("RCPT TO:<alice@example.com>", 250)


def test_bare_lf_rejected_by_strict_listener(ternd_factory):
    srv = ternd_factory(config=STRICT, listen=False)
    c = srv.connect()
    c.ehlo()
    # Whether the server answers at the bare LF or at the following CRLF, the first
    # reply refuses the line, and the MAIL inside it is never accepted.
    c.send("MAIL FROM:<sender@example.net>\nRCPT TO:<alice@example.com>\r\n")
    r = c.expect(500)
    assert "bare lf" in r.text.lower(), r
    c.send("QUIT\r\n")
    while True:
        r = c.reply()
        assert r.code != 250, "a command ending in bare LF was accepted: %r" % r
        if r.code == 221:
            break


def test_lenient_default_accepts_bare_lf_dialogue(ternd):
    """What a Java PrintWriter client sends: every line ends in \\n only."""
    c = ternd.connect()
    c.send("HELO java.example\n")
    c.expect(250)
    c.send("MAIL FROM:<java@example.net>\n")
    c.expect(250)
    c.send("RCPT TO:<alice@example.com>\n")
    c.expect(250)
    c.send("DATA\n")
    c.expect(354)
    c.send("Subject: from java\n\nhello\n.\n")
    c.expect(250)
    c.send("QUIT\n")
    c.expect(221)
    c.close()
    st = read_stored(ternd.wait_mail("alice@example.com", 1)[0])
    assert st.return_path == "<java@example.net>"
    assert st.message == b"Subject: from java\n\nhello\n"


def test_too_long_command_line(ternd):
    c = ternd.connect()
    c.send("NOOP " + "x" * 595 + "\r\n")
    r = c.expect(500)
    assert enhanced(r).startswith("5.5.")
    c.cmd("NOOP", 250)
    c.cmd("MAIL FROM:<" + "a" * 300 + "@example.net>", (500, 501, 553))
    c.cmd("NOOP", 250)


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n"],
                         ids=["LF.LF", "CRLF.LF", "LF.CRLF", "CR.CRLF"])
def test_no_smuggling_in_strict_mode(ternd_factory, fake_end):
    srv = ternd_factory(config=STRICT, listen=False)
    c = begin(srv)
    c.cmd("DATA", 354)
    c.send(b"Subject: carrier\r\n\r\ncarrier body" + fake_end +
           b"MAIL FROM:<smuggler@example.net>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
           b"Subject: smuggled\r\n\r\nsmuggled body\r\n.\r\n")
    # exactly one reply for the end of data: accepted whole, or refused whole
    r = c.expect((250, 550, 554))
    r2 = c.cmd("QUIT")
    assert r2.code == 221, "extra reply after end of data (smuggled command?): %r" % r2
    c.close()
    if r.code == 250:
        srv.wait_mail("alice@example.com", 1)
    assert maildir_files(srv.mailbox("victim@example.org")) == []
    assert len(all_stored(srv.data_dir)) <= 1
    for p in all_stored(srv.data_dir):
        st = read_stored(p)
        assert st.delivered_to == "alice@example.com"
        assert not st.message.startswith(b"Subject: smuggled")


def test_size_declared_too_big(ternd):
    c = ternd.connect()
    c.ehlo()
    r = c.cmd("MAIL FROM:<sender@example.net> SIZE=999999999999", 552)
    assert enhanced(r).startswith("5.")
    c.cmd("MAIL FROM:<sender@example.net> SIZE=1000", 250)


def test_recipient_limit(ternd):
    c = ternd.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@example.net>", 250)
    c.send("".join("RCPT TO:<r%d@example.com>\r\n" % i for i in range(1001)))
    codes = [c.reply().code for _ in range(1001)]
    assert codes[:1000] == [250] * 1000
    assert codes[1000] == 452
    c.cmd("RSET", 250)
    c.cmd("QUIT", 221)


def test_too_many_errors_closes(ternd):
    c = ternd.connect()
    for i in range(100):
        r = c.cmd("BOGUS%d" % i)
        if r.code == 421:
            break
        assert r.code == 500, r
    else:
        pytest.fail("no 421 after 100 bad commands")
    assert c.is_closed()


def test_vrfy_default(ternd):
    c = ternd.connect()
    c.ehlo()
    c.cmd("VRFY alice@example.com", (250, 252))


def test_help(ternd):
    c = ternd.connect()
    c.cmd("HELP", 214)
    c.cmd("HELP MAIL", 214)
    c.cmd("NOOP", 250)


def test_bdat(ternd):
    c = begin(ternd)
    c.send("BDAT 5\r\nhello")
    c.expect(250)
    c.send("BDAT 0 LAST\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    st = read_stored(ternd.wait_mail("alice@example.com", 1)[0])
    assert st.message.rstrip(b"\n") == b"hello"


def test_bdat_chunks_pipelined(ternd):
    c = ternd.connect()
    c.ehlo()
    part1 = b"Subject: chunks\r\n\r\nfirst "
    part2 = b"second\r\n.leading dot is data in BDAT\r\n"
    c.send(b"MAIL FROM:<sender@example.net>\r\nRCPT TO:<alice@example.com>\r\n" +
           b"BDAT %d\r\n" % len(part1) + part1 +
           b"BDAT %d LAST\r\n" % len(part2) + part2)
    assert [c.reply().code for _ in range(4)] == [250, 250, 250, 250]
    c.cmd("QUIT", 221)
    st = read_stored(ternd.wait_mail("alice@example.com", 1)[0])
    assert st.message == b"Subject: chunks\n\nfirst second\n.leading dot is data in BDAT\n"


def test_data_after_bdat_refused(ternd):
    c = begin(ternd)
    c.send("BDAT 3\r\nabc")
    c.expect(250)
    c.cmd("DATA", 503)
    c.cmd("RSET", 250)


def test_quit(ternd):
    c = ternd.connect()
    c.cmd("QUIT", 221)
    assert c.is_closed()
