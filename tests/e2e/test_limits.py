"""Connection limits: per client IP and in total."""

import pytest

from conftest import SMTPConn, wait_until


def refused(srv, source):
    c = SMTPConn(srv.host, srv.port, source=source)
    r = c.reply()
    assert r.code == 421, r
    assert r.lines[0].startswith("4.7.0"), r
    assert c.is_closed()
    c.close()


def test_per_ip_limit(ternd_factory):
    srv = ternd_factory(config="max_connections_per_ip = 2\n")
    a = srv.connect(source="127.0.0.1")
    b = srv.connect(source="127.0.0.1")
    refused(srv, "127.0.0.1")
    other = srv.connect(source="127.0.0.2")  # another address is not affected
    other.cmd("NOOP", 250)
    a.cmd("QUIT", 221)
    a.close()

    def try_again():
        c = SMTPConn(srv.host, srv.port, source="127.0.0.1")
        if c.reply().code == 220:
            return c
        c.close()
        return None
    c = wait_until(try_again, timeout=5, interval=0.05, what="a free per-IP slot")
    c.cmd("NOOP", 250)
    for x in (b, other, c):
        x.close()


def test_total_limit(ternd_factory):
    srv = ternd_factory(config="max_connections = 3\n")
    conns = [srv.connect(source="127.0.0.%d" % i) for i in (1, 2, 3)]
    refused(srv, "127.0.0.4")
    for c in conns:
        c.cmd("NOOP", 250)
        c.close()


@pytest.mark.parametrize("n", [20])
def test_many_concurrent_sessions(ternd, n):
    conns = [ternd.connect() for _ in range(n)]
    for i, c in enumerate(conns):
        c.ehlo()
        c.cmd("MAIL FROM:<s%d@example.net>" % i, 250)
        c.cmd("RCPT TO:<many@example.com>", 250)
        c.cmd("DATA", 354)
    for i, c in enumerate(conns):
        c.send("Subject: concurrent %d\r\n\r\nbody\r\n.\r\n" % i)
    for c in conns:
        c.expect(250)
        c.cmd("QUIT", 221)
        c.close()
    assert len(ternd.wait_mail("many@example.com", n)) == n
