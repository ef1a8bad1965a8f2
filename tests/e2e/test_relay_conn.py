"""Outbound delivery, second part (issue 6): PIPELINING on the wire, several
messages per connection, the per-destination connection limit, the transport map,
IPv6 delivery, the delay warning and certificate verification of outbound TLS.

All on loopback: dnsmasq serves the test domains, receivers listen on 127.0.0.2/3
or ::1; the sender's resolver is always that dnsmasq."""

import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import free_port, wait_until, maildir_files
from test_relay import (MSG, common_port, dnsmasq, make_sender, submit,  # noqa: F401
                        Receiver, serve)


class ChunkServer:
    """A threaded SMTP server that records every recv() chunk per connection and
    how many connections were open at once. ehlo: the extension lines offered."""

    def __init__(self, host, port, ehlo=(b"PIPELINING",), data_delay=0.0):
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.ehlo = ehlo
        self.data_delay = data_delay
        self.lock = threading.Lock()
        self.conns = 0          # connections accepted
        self.open = 0           # open right now
        self.max_open = 0
        self.chunks = []        # (conn number, bytes) for every recv
        self.messages = []      # (conn number, DATA bytes)
        self.stop = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                n = self.conns
                self.conns += 1
                self.open += 1
                self.max_open = max(self.max_open, self.open)
            threading.Thread(target=self.session, args=(c, n), daemon=True).start()

    def session(self, c, n):
        buf = b""
        try:
            c.settimeout(15)
            c.sendall(b"220 chunk ESMTP\r\n")
            while True:
                while b"\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    with self.lock:
                        self.chunks.append((n, d))
                    buf += d
                line, buf = buf.split(b"\r\n", 1)
                u = line.upper()
                if u.startswith(b"EHLO"):
                    ext = [b"250-chunk"] + [b"250-" + e for e in self.ehlo[:-1]] + \
                          [b"250 " + self.ehlo[-1]] if self.ehlo else [b"250 chunk"]
                    c.sendall(b"\r\n".join(ext) + b"\r\n")
                elif u.startswith((b"MAIL", b"RCPT", b"RSET")):
                    c.sendall(b"250 ok\r\n")
                elif u.startswith(b"DATA"):
                    c.sendall(b"354 go\r\n")
                    while b"\r\n.\r\n" not in buf:
                        d = c.recv(65536)
                        if not d:
                            return
                        buf += d
                    data, buf = buf.split(b"\r\n.\r\n", 1)
                    time.sleep(self.data_delay)
                    with self.lock:
                        self.messages.append((n, data))
                    c.sendall(b"250 queued\r\n")
                elif u.startswith(b"QUIT"):
                    c.sendall(b"221 bye\r\n")
                    return
                else:
                    c.sendall(b"500 what\r\n")
        except OSError:
            pass
        finally:
            c.close()
            with self.lock:
                self.open -= 1

    def close(self):
        self.stop = True
        self.sock.close()


def sender_to_chunk(ternd_factory, dnsmasq, extra="", **kw):
    rport = common_port(["127.0.0.2"])
    dns = dnsmasq(["--mx-host=remote.test,mx1.remote.test,10",
                   "--host-record=mx1.remote.test,127.0.0.2"])
    srv = ChunkServer("127.0.0.2", rport, **kw)
    send = make_sender(ternd_factory, dns, rport,
                       "".join("bob%d: bob%d@remote.test\n" % (i, i) for i in range(10)), extra)
    return srv, send


def submit_many(send, k):
    """k messages in one SMTP session (k transactions), one recipient each."""
    with send.smtp() as s:
        for i in range(k):
            s.sendmail("alice@sender.test", ["bob%d@sender.test" % i], MSG)


def test_pipelining_sends_envelope_in_one_write(ternd_factory, dnsmasq):
    srv, send = sender_to_chunk(ternd_factory, dnsmasq)
    try:
        with send.smtp() as s:
            s.sendmail("alice@sender.test", ["bob1@sender.test", "bob2@sender.test",
                                             "bob3@sender.test"], MSG)
        wait_until(lambda: srv.messages, timeout=15, what="message at the receiver")
        # MAIL, the three RCPTs and DATA arrived in one read
        group = [d for _, d in srv.chunks if d.startswith(b"MAIL FROM:")]
        assert len(group) == 1, srv.chunks
        g = group[0]
        assert g.count(b"RCPT TO:") == 3 and g.endswith(b"DATA\r\n"), g
        wait_until(lambda: "event=removed" in send.log(), timeout=10, what="removed")
    finally:
        srv.close()


def test_no_pipelining_when_not_offered(ternd_factory, dnsmasq):
    srv, send = sender_to_chunk(ternd_factory, dnsmasq, ehlo=(b"8BITMIME",))
    try:
        with send.smtp() as s:
            s.sendmail("alice@sender.test", ["bob1@sender.test", "bob2@sender.test"], MSG)
        wait_until(lambda: srv.messages, timeout=15, what="message at the receiver")
        mail = [d for _, d in srv.chunks if d.startswith(b"MAIL FROM:")]
        assert mail and all(b"RCPT" not in d for d in mail), srv.chunks
    finally:
        srv.close()


def test_several_messages_per_connection(ternd_factory, dnsmasq):
    srv, send = sender_to_chunk(ternd_factory, dnsmasq, "relay_max_per_destination = 1\n")
    try:
        submit_many(send, 4)
        wait_until(lambda: len(srv.messages) == 4, timeout=20, what="4 messages")
        assert srv.conns == 1, (srv.conns, send.log())
        assert send.log().count("event=connection-reused") == 3
        # the idle connection is closed with QUIT after a few seconds
        wait_until(lambda: "reason=idle" in send.log(), timeout=10, what="idle close")
        wait_until(lambda: srv.open == 0, timeout=5, what="connection closed")
        assert any(d.startswith(b"QUIT") for _, d in srv.chunks)
    finally:
        srv.close()


def test_messages_per_connection_limit(ternd_factory, dnsmasq):
    srv, send = sender_to_chunk(ternd_factory, dnsmasq,
                                "relay_max_per_destination = 1\n"
                                "relay_max_messages_per_connection = 2\n")
    try:
        submit_many(send, 4)
        wait_until(lambda: len(srv.messages) == 4, timeout=20, what="4 messages")
        wait_until(lambda: srv.conns == 2, timeout=5, what="second connection")
        per = {}
        for n, _ in srv.messages:
            per[n] = per.get(n, 0) + 1
        assert sorted(per.values()) == [2, 2], per
    finally:
        srv.close()


def test_max_per_destination_caps_concurrent_connections(ternd_factory, dnsmasq):
    srv, send = sender_to_chunk(ternd_factory, dnsmasq,
                                "relay_threads = 6\nrelay_max_per_destination = 2\n",
                                data_delay=0.7)
    try:
        submit_many(send, 6)
        wait_until(lambda: len(srv.messages) == 6, timeout=30, what="6 messages")
        assert srv.max_open == 2, srv.max_open
    finally:
        srv.close()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_busy_destination_waits_for_a_connection_not_polling(ternd_factory, dnsmasq):
    """More relay threads than connections allowed to the destination: a message
    that finds them all busy is parked and sent when a connection is given back.
    Parked, it would otherwise wait 10 s (RELAY_PARK_MS), more than this test
    allows; and before parking existed, the idle workers re-read such messages in
    a loop (both CPUs busy for as long as the destination was)."""
    srv, send = sender_to_chunk(ternd_factory, dnsmasq,
                                "relay_threads = 4\nrelay_max_per_destination = 1\n",
                                data_delay=0.5)
    try:
        cpu0 = cpu_seconds(send.proc.pid)
        submit_many(send, 4)
        wait_until(lambda: len(srv.messages) == 4, timeout=8, what="4 messages")
        used = cpu_seconds(send.proc.pid) - cpu0
        assert srv.max_open == 1, srv.max_open
        assert used < 1.0, "ternd used %.2f s of CPU for 4 messages" % used
    finally:
        srv.close()


def test_transport_map_overrides_mx(ternd_factory, dnsmasq):
    rport = common_port(["127.0.0.2", "127.0.0.3"])
    # the MX points at 127.0.0.2 where nobody listens; the transport says 127.0.0.3
    dns = dnsmasq(["--mx-host=remote.test,mx1.remote.test,10",
                   "--host-record=mx1.remote.test,127.0.0.2"])
    recv = ternd_factory(config="local_domains = remote.test\n", host="127.0.0.3", port=rport)
    send = make_sender(ternd_factory, dns, rport, "bob: bob@remote.test\n",
                       "transport = remote.test 127.0.0.3:%d\n" % rport)
    submit(send, ["bob@sender.test"], MSG)
    recv.wait_mail("bob@remote.test", timeout=15)
    wait_until(lambda: "event=relayed" in send.log(), timeout=10, what="relayed logged")
    assert "host=127.0.0.3[127.0.0.3]:%d" % rport in send.log()
    assert "127.0.0.2" not in send.log()


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no ::1 on this host")
def test_ipv6_delivery_via_aaaa(ternd_factory, dnsmasq):
    rport = free_port("::1")
    dns = dnsmasq(["--mx-host=six.test,mx6.six.test,10",
                   "--host-record=mx6.six.test,::1"])
    recv = ternd_factory(config="local_domains = six.test\n", host="::1", port=rport)
    send = make_sender(ternd_factory, dns, rport, "bob: bob@six.test\n")
    submit(send, ["bob@sender.test"], MSG)
    recv.wait_mail("bob@six.test", timeout=15)
    wait_until(lambda: "event=relayed" in send.log(), timeout=10, what="relayed logged")
    assert "host=mx6.six.test[::1]:%d" % rport in send.log()


def test_delay_warning_sent_once(ternd_factory, dnsmasq):
    rport = common_port(["127.0.0.2"])
    dns = dnsmasq(["--mx-host=remote.test,mx1.remote.test,10",
                   "--host-record=mx1.remote.test,127.0.0.2"])
    rcv = Receiver("127.0.0.2", rport,
                   lambda r, c, n: serve(r, c, rcpt_reply=b"451 4.3.0 busy, later"))
    send = make_sender(ternd_factory, dns, rport, "bob: bob@remote.test\n",
                       "delay_warning = 2s\n")
    try:
        submit(send, ["bob@sender.test"], MSG)
        files = send.wait_mail("alice@sender.test", timeout=15)
        wait_until(lambda: rcv.n >= 5, timeout=20, what="more retries after the warning")
        files = maildir_files(send.mailbox("alice@sender.test"))
        assert len(files) == 1
        raw = files[0].read_bytes()
        assert b"Action: delayed" in raw and b"busy, later" in raw
        assert b"Action: failed" not in raw
        assert send.log().count("event=delay-warning") == 1
    finally:
        rcv.close()


def make_ca_and_cert(d, name):
    """A CA and a server certificate for name signed by it (openssl CLI)."""
    def run(*a):
        subprocess.run(a, check=True, capture_output=True, cwd=d)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-days", "2", "-subj", "/CN=tern test CA", "-keyout", "ca.key",
        "-out", "ca.pem")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-subj", "/CN=" + name, "-keyout", "srv.key", "-out", "srv.csr")
    (d / "ext.cnf").write_text("subjectAltName = DNS:%s\n" % name)
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "srv.pem")


@pytest.mark.parametrize("case", ["good", "wrong_ca", "wrong_name"])
def test_tls_verify(ternd_factory, dnsmasq, tmp_path, case):
    rport = common_port(["127.0.0.2"])
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    make_ca_and_cert(ca_dir, "other.test" if case == "wrong_name" else "mx1.remote.test")
    other = tmp_path / "other"
    other.mkdir()
    make_ca_and_cert(other, "mx1.remote.test")
    dns = dnsmasq(["--mx-host=remote.test,mx1.remote.test,10",
                   "--host-record=mx1.remote.test,127.0.0.2"])
    recv = ternd_factory(config="local_domains = remote.test\n[listener 127.0.0.2:{port}]\n"
                         "tls_cert = %s\ntls_key = %s\n" % (ca_dir / "srv.pem", ca_dir / "srv.key"),
                         host="127.0.0.2", port=rport, listen=False)
    ca = (other if case == "wrong_ca" else ca_dir) / "ca.pem"
    send = make_sender(ternd_factory, dns, rport, "bob: bob@remote.test\n",
                       "relay_tls_verify = yes\nrelay_tls_ca_file = %s\n" % ca, retry="1h")
    submit(send, ["bob@sender.test"], MSG)
    if case == "good":
        files = recv.wait_mail("bob@remote.test", timeout=15)
        assert b"with ESMTPS" in files[0].read_bytes()  # it went over TLS
        # the receiver stores before it answers 250: the sender logs a moment later
        wait_until(lambda: "event=relayed" in send.log(), timeout=10, what="relayed logged")
    else:
        wait_until(lambda: "event=deferred" in send.log(), timeout=15, what="deferred")
        assert "event=tls-verify-failed" in send.log()
        assert maildir_files(recv.mailbox("bob@remote.test")) == []


def test_local_failure_bounces_after_give_up(ternd_factory):
    """A local mailbox that cannot be written (its Maildir is a regular file) is
    retried until give_up, then bounces once to the sender."""
    t = ternd_factory(config="hostname = sender.test\nlocal_domains = sender.test\n"
                             "resolver = 127.0.0.1:9\nretry_first = 1s\nretry_max = 1s\n"
                             "give_up = 3s\n", start=False)
    box = t.mailbox("carol@sender.test")
    box.parent.mkdir(parents=True, exist_ok=True)
    box.write_bytes(b"not a directory\n")
    t.start()
    submit(t, ["carol@sender.test"], MSG)
    files = t.wait_mail("alice@sender.test", timeout=20)
    raw = files[0].read_bytes()
    assert b"Action: failed" in raw and b"carol@sender.test" in raw
    assert b"local delivery failed" in raw
    wait_until(lambda: "event=removed" in t.log(), timeout=10, what="original removed")
    log = t.log()
    assert "event=deferred" in log and "event=bounced" in log
    time.sleep(1.5)
    assert len(maildir_files(t.mailbox("alice@sender.test"))) == 1
    assert box.read_bytes() == b"not a directory\n"
