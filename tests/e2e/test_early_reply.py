"""Early reply (docs/ARCHITECTURE.md "Early reply"): for local-only mail on a plain
TCP session, the thread that makes the message durable sends the 250 itself; the
loop drops those bytes from its own output. The client must see exactly one reply
per command, in order, whatever it does next: pipeline the next command, close or
reset right after the final dot, or speak TLS (no early reply there). A socket the
committer may still write to is never closed early: no descriptor leaks, and no
reply reaches a later connection that got the same descriptor number."""

import os
import socket
import ssl
import struct
import subprocess

from conftest import SMTPConn, maildir_files, maildir_new, wait_until

BODY = b"Subject: early %d\r\n\r\nline one\r\n.leading dot\r\n"


def _fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _message(c, i, rcpt="alice@example.com"):
    c.cmd("MAIL FROM:<a@example.net>", 250)
    c.cmd("RCPT TO:<%s>" % rcpt, 250)
    c.cmd("DATA", 354)
    c.send(BODY % i + b".\r\n")


def _nothing_more(c, wait=0.3):
    """No stray bytes (a second 250, say) arrive."""
    c.sock.settimeout(wait)
    try:
        extra = c.sock.recv(65536)
    except (socket.timeout, TimeoutError):
        extra = b""
    assert c.buf + extra == b"", "unexpected bytes %r" % (c.buf + extra)
    c.sock.settimeout(5.0)


def test_one_reply_per_message_in_order(ternd):
    with SMTPConn(ternd.host, ternd.port) as c:
        c.greet()
        c.ehlo()
        for i in range(30):
            _message(c, i)
            r = c.expect(250, text="queued as")
            assert r.text.split()[-1], r
            # the next command straight after the early 250: answered, and only once
            c.cmd("NOOP", 250)
        _nothing_more(c)
        c.cmd("QUIT", 221)
    # the copies are linked into new/ right after their 250s (docs/QUEUE.md)
    box = maildir_new(ternd.data_dir, "alice@example.com")
    wait_until(lambda: len(maildir_files(box)) == 30, timeout=10, what="30 messages")
    assert "early-reply-mismatch" not in ternd.log()


def test_pipelined_after_the_dot(ternd):
    """The dot, the next transaction and QUIT in one write: every reply, once, in
    order (the next MAIL is read while the commit is pending and held)."""
    with SMTPConn(ternd.host, ternd.port) as c:
        c.greet()
        c.ehlo()
        c.cmd("MAIL FROM:<a@example.net>", 250)
        c.cmd("RCPT TO:<alice@example.com>", 250)
        c.cmd("DATA", 354)
        c.send(BODY % 1 + b".\r\nMAIL FROM:<b@example.net>\r\nRCPT TO:<bob@example.com>\r\n"
               b"DATA\r\n")
        c.expect(250, text="queued as")
        c.expect(250)
        c.expect(250)
        c.expect(354)
        c.send(BODY % 2 + b".\r\nQUIT\r\n")
        c.expect(250, text="queued as")
        c.expect(221)
        assert c.is_closed()
        assert c.buf == b""
    for who in ("alice@example.com", "bob@example.com"):
        box = maildir_new(ternd.data_dir, who)
        wait_until(lambda: len(maildir_files(box)) == 1, timeout=10, what="1 message")


def test_close_or_reset_right_after_the_dot(ternd):
    """Clients that never read their 250: the message is still delivered (the 250
    went out or not, it was durable first), ternd holds no descriptor afterwards, and
    new connections (likely given the same numbers) get only their own replies."""
    base = _fds(ternd.proc.pid)
    n = 40
    for i in range(n):
        c = SMTPConn(ternd.host, ternd.port)
        c.greet()
        c.ehlo()
        _message(c, i)
        if i % 2:  # reset: RST instead of FIN
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    box = maildir_new(ternd.data_dir, "alice@example.com")
    wait_until(lambda: len(maildir_files(box)) == n, timeout=10, what="%d messages" % n)
    wait_until(lambda: _fds(ternd.proc.pid) <= base, timeout=10,
               what="descriptors back to %d (now %d)" % (base, _fds(ternd.proc.pid)))
    for _ in range(5):
        with SMTPConn(ternd.host, ternd.port) as c:
            c.greet()
            c.ehlo()
            c.cmd("NOOP", 250)
            _nothing_more(c, wait=0.1)
            c.cmd("QUIT", 221)
    assert "early-reply-mismatch" not in ternd.log()


def test_many_sessions_at_once(ternd):
    """20 sessions interleaved, 10 messages each: every session sees its own replies
    only (a 250 on the wrong socket would break the sequence)."""
    conns = []
    for k in range(20):
        c = SMTPConn(ternd.host, ternd.port)
        c.greet()
        c.ehlo("c%d.test" % k)
        conns.append(c)
    for i in range(10):
        for c in conns:
            c.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
        for c in conns:
            c.expect(250)
            c.expect(250)
            c.expect(354)
            c.send(BODY % i + b".\r\n")
        for c in conns:
            c.expect(250, text="queued as")
    for c in conns:
        _nothing_more(c, wait=0.05)
        c.cmd("QUIT", 221)
        c.close()
    box = maildir_new(ternd.data_dir, "bob@example.com")
    wait_until(lambda: len(maildir_files(box)) == 200, timeout=10, what="200 messages")


def test_tls_session_replies_from_the_loop(ternd_factory, tmp_path):
    """STARTTLS: the committer must not write into a TLS stream; the 250 comes from
    the loop, once, and decrypts fine."""
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=mx.test.example", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    t = ternd_factory(config="hostname = mx.test.example\nlocal_domains = example.com\n"
                             "[listener 127.0.0.1:{port}]\ntls_cert = %s\ntls_key = %s\n"
                             % (crt, key), listen=False)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with SMTPConn(t.host, t.port) as c:
        c.greet()
        c.ehlo()
        c.cmd("STARTTLS", 220)
        c.sock = ctx.wrap_socket(c.sock, server_hostname="mx.test.example")
        c.ehlo()
        for i in range(5):
            _message(c, i)
            c.expect(250, text="queued as")
            c.cmd("NOOP", 250)
        c.cmd("QUIT", 221)
    box = maildir_new(t.data_dir, "alice@example.com")
    wait_until(lambda: len(maildir_files(box)) == 5, timeout=10, what="5 messages")
