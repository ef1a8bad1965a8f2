"""STARTTLS, implicit TLS, AUTH (PLAIN, LOGIN, SCRAM-SHA-256), submission, relay
control (issue 5). Certificates are made by each test with the openssl CLI in its
temporary directory; clients are Python's smtplib/ssl, swaks and openssl s_client."""

import base64
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import SMTPConn, free_port, is_listening, tern_cli, wait_until

PASSWORD = "s3cret pass"


def make_cert(d):
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=mx.test.example", "-addext",
                    "subjectAltName=DNS:mx.test.example",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def hash_pw(*opts):
    r = subprocess.run([str(tern_cli.__globals__["TERN"]), "passwd", *opts],
                       input=PASSWORD + "\n", capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture
def tls_env(tmp_path):
    d = tmp_path / "etc"
    d.mkdir()
    cert, key = make_cert(d)
    (d / "users").write_text(
        "alice:%s\nbob@example.com:%s\ncarol:%s\n" %
        (hash_pw(), hash_pw("--sha512"), hash_pw("--scram")))
    return {"dir": d, "cert": cert, "key": key, "users": d / "users"}


def config(env, sub_port, smtps_port, extra_global="", extra_listener=""):
    return """hostname = mx.test.example
local_domains = example.com
users = {users}
auth_fail_delay = 0
# relayed mail: no DNS query leaves the machine; the lookup fails, the mail waits
resolver = 127.0.0.1:9
{extra_global}
[listener 127.0.0.1:{{port}}]
tls_cert = {cert}
tls_key = {key}
auth = yes
{extra_listener}
[listener 127.0.0.1:{sub}]
tls_cert = {cert}
tls_key = {key}
submission = yes
require_tls = yes

[listener 127.0.0.1:{smtps}]
tls = implicit
tls_cert = {cert}
tls_key = {key}
submission = yes
""".format(users=env["users"], cert=env["cert"], key=env["key"], sub=sub_port,
           smtps=smtps_port, extra_global=extra_global, extra_listener=extra_listener)


@pytest.fixture
def srv(ternd_factory, tls_env):
    sub, smtps = free_port(), free_port()
    t = ternd_factory(config=config(tls_env, sub, smtps), listen=False)
    t.sub_port, t.smtps_port, t.env = sub, smtps, tls_env
    # the fixture waits for the first listener only; the others follow
    wait_until(lambda: is_listening(sub) and is_listening(smtps), timeout=10,
               what="all listeners")
    return t


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def test_ehlo_offers_starttls_not_auth_before_tls(srv):
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.has_extn("starttls")
        assert not s.has_extn("auth")
        s.starttls(context=ctx())
        s.ehlo("client.test")
        assert not s.has_extn("starttls")
        assert s.has_extn("auth")
        assert "SCRAM-SHA-256" in s.esmtp_features["auth"]
        assert "PLAIN" in s.esmtp_features["auth"]


def test_starttls_login_and_received_header(srv):
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.starttls(context=ctx())
        s.login("alice@example.com", PASSWORD)
        s.sendmail("alice@example.com", ["bob@example.com"], b"Subject: t\r\n\r\nhi\r\n")
    f = srv.wait_mail("bob@example.com")[0]
    raw = f.read_bytes()
    assert b"with ESMTPSA" in raw, raw[:400]
    assert b"(using TLSv1.3 with cipher" in raw, raw[:400]


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_auth_mechanisms_smtplib(srv, mech):
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.starttls(context=ctx())
        s.ehlo("client.test")
        s.user, s.password = "bob@example.com", PASSWORD
        code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower()), initial_response_ok=False)
        assert code == 235


def test_wrong_password_535_and_close_after_limit(srv):
    c = srv.connect()
    c.ehlo()
    c.cmd("STARTTLS", 220)
    tls = ctx().wrap_socket(c.sock, server_hostname="mx.test.example")
    c.sock, c.buf = tls, b""
    c.ehlo()
    bad = base64.b64encode(b"\0alice\0Zq9wrongpw").decode()
    for _ in range(2):
        c.cmd("AUTH PLAIN " + bad, 535)
    c.send("AUTH PLAIN %s\r\n" % bad)
    c.expect(535)
    c.expect(421)
    assert c.is_closed()
    assert "Zq9wrongpw" not in srv.log()


def test_auth_error_paths(srv):
    c = srv.connect()
    c.ehlo()
    c.cmd("AUTH PLAIN", 538)                      # not over plaintext
    c.cmd("STARTTLS x", 501)
    c.cmd("STARTTLS", 220)
    tls = ctx().wrap_socket(c.sock, server_hostname="mx.test.example")
    c.sock, c.buf = tls, b""
    c.cmd("AUTH PLAIN", 503)                      # EHLO first (session was reset)
    c.ehlo()
    c.cmd("STARTTLS", 503)                        # twice
    c.cmd("AUTH FOO", 504)
    c.cmd("AUTH PLAIN !!!!", 501)
    c.cmd("AUTH PLAIN", 334)
    c.cmd("*", 501)
    c.cmd("AUTH LOGIN", 334)
    c.cmd("not base64", 501)
    c.cmd("AUTH PLAIN", 334)
    r = c.cmd("A" * 5000, 500)
    assert r.lines[0].startswith("5.5.6")
    c.cmd("AUTH PLAIN " + base64.b64encode(b"no-nuls").decode(), 501)
    c.cmd("AUTH PLAIN " + base64.b64encode(b"\0carol\0" + PASSWORD.encode()).decode(), 235)
    c.cmd("AUTH PLAIN =", 503)                    # already authenticated
    c.cmd("QUIT", 221)


def test_scram_with_tern_send(srv, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    msg = tmp_path / "m.eml"
    msg.write_text("From: carol@example.com\nTo: bob@example.com\nSubject: scram\n\nhello\n")
    r = tern_cli("send", "--server", "127.0.0.1:%d" % srv.port, "--tls", "starttls",
                 "--insecure", "--auth", "carol", "--password-file", str(pw),
                 "--from", "carol@example.com", "--to", "bob@example.com", "-v",
                 "--message", str(msg), timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "AUTH SCRAM-SHA-256" in r.stderr, r.stderr
    srv.wait_mail("bob@example.com")


def scram_client(c, user, password):
    import hashlib
    import hmac
    import os
    cnonce = base64.b64encode(os.urandom(12)).decode()
    first_bare = "n=%s,r=%s" % (user, cnonce)
    r = c.cmd("AUTH SCRAM-SHA-256 " + base64.b64encode(("n,," + first_bare).encode()).decode(),
              334)
    server_first = base64.b64decode(r.lines[0]).decode()
    parts = dict(x.split("=", 1) for x in server_first.split(","))
    assert parts["r"].startswith(cnonce)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(parts["s"]),
                                 int(parts["i"]))
    ckey = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(ckey).digest()
    final_wo = "c=biws,r=" + parts["r"]
    am = ",".join([first_bare, server_first, final_wo]).encode()
    sig = hmac.new(stored, am, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(ckey, sig))
    final = final_wo + ",p=" + base64.b64encode(proof).decode()
    r = c.cmd(base64.b64encode(final.encode()).decode())
    if r.code != 334:
        return r
    skey = hmac.new(salted, b"Server Key", "sha256").digest()
    v = base64.b64decode(r.lines[0]).decode()
    assert v == "v=" + base64.b64encode(hmac.new(skey, am, "sha256").digest()).decode()
    return c.cmd("")


def tls_conn(srv, port=None):
    c = SMTPConn(srv.host, port or srv.port)
    c.greet()
    c.ehlo()
    c.cmd("STARTTLS", 220)
    c.sock, c.buf = ctx().wrap_socket(c.sock, server_hostname="mx.test.example"), b""
    c.ehlo()
    return c


def test_scram_sha256_raw(srv):
    c = tls_conn(srv)
    assert scram_client(c, "carol", PASSWORD).code == 235
    c.close()
    c = tls_conn(srv)
    assert scram_client(c, "carol", "wrong").code == 535
    c.close()
    c = tls_conn(srv)   # a user with only a crypt hash cannot use SCRAM
    assert scram_client(c, "alice", PASSWORD).code == 535
    c.close()


def test_starttls_injection_is_discarded(srv):
    """CVE-2011-0411: commands pipelined after STARTTLS in the same packet must not be
    executed inside the TLS session."""
    c = srv.connect()
    c.ehlo()
    c.send("STARTTLS\r\nEHLO x\r\nMAIL FROM:<a@b>\r\n")
    c.expect(220)
    c.sock, c.buf = ctx().wrap_socket(c.sock, server_hostname="mx.test.example"), b""
    # Had the injected lines been kept, replies to EHLO/MAIL would be waiting now.
    c.sock.settimeout(0.5)
    with pytest.raises((socket.timeout, TimeoutError, ssl.SSLError)):
        c.sock.recv(100)
    c.sock.settimeout(5)
    c.cmd("MAIL FROM:<a@example.com>", 250)   # plain MAIL works: no nested MAIL


def test_injection_bytes_break_handshake(srv):
    """Plaintext bytes sent after STARTTLS but before the handshake are not TLS: the
    handshake fails and the session closes; the server keeps running."""
    c = srv.connect()
    c.ehlo()
    c.send("STARTTLS\r\n")
    c.expect(220)
    c.send("MAIL FROM:<a@b>\r\n")
    assert c.is_closed()
    with srv.smtp() as s:
        assert s.noop()[0] == 250


def test_submission_requires_tls_then_auth(srv):
    c = srv.connect() if False else SMTPConn(srv.host, srv.sub_port)
    c.greet()
    c.ehlo()
    r = c.cmd("MAIL FROM:<alice@example.com>", 530)
    assert r.lines[0].startswith("5.7.0")
    c.cmd("AUTH PLAIN =", 530)
    c.close()
    c = tls_conn(srv, srv.sub_port)
    c.cmd("MAIL FROM:<alice@example.com>", 530)
    c.cmd("AUTH PLAIN " + base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode(), 235)
    c.cmd("MAIL FROM:<alice@example.com>", 250)
    c.cmd("RCPT TO:<someone@elsewhere.example>", 250)   # relaying when authenticated
    c.cmd("DATA", 354)
    c.send("Subject: relay\r\n\r\nx\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    # accepted for relaying: waits in the queue, never lands in a local Maildir
    time.sleep(0.5)
    assert not (srv.data_dir / "mail" / "elsewhere.example").exists()
    assert any((srv.data_dir / "spool" / "queue").iterdir())


def test_implicit_tls_smtps(srv):
    with smtplib.SMTP_SSL(srv.host, srv.smtps_port, context=ctx(), timeout=10) as s:
        s.ehlo("client.test")
        assert not s.has_extn("starttls")
        assert s.has_extn("auth")
        s.login("alice", PASSWORD)
        s.sendmail("alice@example.com", ["bob@example.com"], b"Subject: 465\r\n\r\nx\r\n")
    srv.wait_mail("bob@example.com")


def test_implicit_tls_garbage_handshake(srv):
    with socket.create_connection((srv.host, srv.smtps_port), timeout=5) as s:
        s.sendall(b"EHLO plaintext\r\n")
        s.settimeout(5)
        try:
            d = s.recv(100)
        except ConnectionResetError:
            d = b""
        assert not d.startswith(b"250")
    with smtplib.SMTP_SSL(srv.host, srv.smtps_port, context=ctx(), timeout=10) as s:
        assert s.noop()[0] == 250


def test_close_mid_data_under_tls_queues_nothing(srv):
    c = tls_conn(srv)
    c.cmd("MAIL FROM:<x@example.net>", 250)
    c.cmd("RCPT TO:<bob@example.com>", 250)
    c.cmd("DATA", 354)
    c.send("Subject: cut\r\n\r\npartial")
    c.sock.close()
    time.sleep(0.5)
    assert not any((srv.data_dir / "spool" / "queue").iterdir())
    with srv.smtp() as s:
        assert s.noop()[0] == 250


@pytest.mark.parametrize("rcpt", [
    "<someone@elsewhere.example>",
    "<user%elsewhere.example@example.com>",
    '<"user@elsewhere.example"@example.com>',
    "<elsewhere.example!user@example.com>",
    "<@example.com:user@elsewhere.example>",
    "<user@elsewhere.example@example.com>",
    "<user@[192.0.2.1]>",
])
def test_relay_tricks_refused(srv, rcpt):
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@example.net>", 250)
    r = c.cmd("RCPT TO:" + rcpt)
    assert r.code in (501, 550, 553, 554), r
    assert r.code != 554 or "relay" in r.text.lower()
    c.cmd("RCPT TO:<bob@example.com>", 250)


def test_trusted_network_may_relay(ternd_factory, tls_env):
    t = ternd_factory(config=config(tls_env, free_port(), free_port(),
                                    extra_global="trusted_networks = 127.0.0.0/8"),
                      listen=False)
    c = t.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@example.net>", 250)
    c.cmd("RCPT TO:<someone@elsewhere.example>", 250)


def test_openssl_s_client_starttls(srv):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl")
    r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                        "127.0.0.1:%d" % srv.port, "-quiet"],
                       input="EHLO s-client.test\r\nQUIT\r\n", capture_output=True,
                       text=True, timeout=20)
    assert "250-AUTH" in r.stdout or "250 AUTH" in r.stdout, r.stdout + r.stderr
    assert "221" in r.stdout
    r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                        "127.0.0.1:%d" % srv.port, "-tls1_1"],
                       input="QUIT\r\n", capture_output=True, text=True, timeout=20)
    assert "Cipher is (NONE)" in r.stdout or r.returncode != 0


@pytest.mark.parametrize("args", [
    ["--tls", "--auth", "PLAIN"],
    ["--tls", "--auth", "LOGIN"],
])
def test_swaks_tls_auth(srv, args):
    if shutil.which("swaks") is None:
        pytest.skip("no swaks")
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.port),
                        "--from", "alice@example.com", "--to", "bob@example.com",
                        "--auth-user", "alice", "--auth-password", PASSWORD, *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0" in r.stdout


def test_swaks_tls_on_connect(srv):
    if shutil.which("swaks") is None:
        pytest.skip("no swaks")
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.smtps_port),
                        "--tls-on-connect", "--auth", "PLAIN", "--auth-user", "bob@example.com",
                        "--auth-password", PASSWORD, "--from", "bob@example.com",
                        "--to", "bob@example.com"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_sighup_reloads_certificate(srv):
    before = ssl.get_server_certificate((srv.host, srv.smtps_port))
    make_cert(srv.env["dir"])
    srv.proc.send_signal(1)
    wait_until(lambda: "tls-reload result=ok" in srv.log(), what="reload")
    after = ssl.get_server_certificate((srv.host, srv.smtps_port))
    assert before != after


def test_config_errors(tmp_path, tls_env):
    f = tmp_path / "c.conf"
    f.write_text("[listener 127.0.0.1:2600]\ntls = starttls\n")
    r = tern_cli("check-config", str(f))
    assert r.returncode != 0 and "tls_cert" in r.stderr
    f.write_text("[listener 127.0.0.1:2600]\nauth = yes\n")
    r = tern_cli("check-config", str(f))
    assert r.returncode != 0 and "allow_plaintext_auth" in r.stderr
    f.write_text("trusted_networks = 10.0.0.1/8\n")
    r = tern_cli("check-config", str(f))
    assert r.returncode != 0 and "host bits" in r.stderr
