"""Several certificates per listener, chosen by the client's SNI server name
(tls_cert_for, docs/CONFIG.md "Several certificates (SNI)"): exact names, *.domain
wildcards, case, no or unknown name -> the default certificate; STARTTLS and
implicit TLS; SIGHUP reload (new names served, a bad file keeps the old set and logs
FILE:LINE); config errors. Certificates are made by each test with the openssl CLI;
clients are Python's ssl module and openssl s_client."""

import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import SMTPConn, TERND, free_port, is_listening, need_tool, tern_cli, wait_until

NAMES = {
    "default": ("default.test", "DNS:default.test"),
    "mx": ("mx.example.org", "DNS:mx.example.org"),
    "wild": ("*.example.net", "DNS:*.example.net,DNS:example.net"),
    "other": ("other.example", "DNS:other.example"),
}


def make_cert(d, tag, cn=None, san=None):
    cn = cn or NAMES[tag][0]
    san = san or NAMES[tag][1]
    cert, key = d / (tag + ".pem"), d / (tag + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=" + cn, "-addext", "subjectAltName=" + san,
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def describe(der):
    """Subject and SAN of a DER certificate, as openssl prints them."""
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject", "-ext",
                        "subjectAltName"], input=der, capture_output=True, check=True)
    return r.stdout.decode()


def cn_of(der):
    for line in describe(der).splitlines():
        if line.startswith("subject="):
            return line.split("CN", 1)[1].lstrip(" =")
    raise AssertionError("no subject in " + describe(der))


def client_ctx(maxver=None):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    if maxver is not None:
        c.maximum_version = maxver
    return c


def starttls_cert(port, name, maxver=None):
    """STARTTLS with server_hostname=name (None: no SNI); the server's certificate
    (DER). The session must go on working after the handshake."""
    c = SMTPConn("127.0.0.1", port, timeout=10)
    try:
        c.greet()
        c.ehlo()
        c.cmd("STARTTLS", 220)
        c.sock = client_ctx(maxver).wrap_socket(c.sock, server_hostname=name)
        der = c.sock.getpeercert(binary_form=True)
        r = c.ehlo()
        assert "STARTTLS" not in r.text
        c.cmd("QUIT", 221)
        return der
    finally:
        c.close()


def implicit_cert(port, name):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_ctx().wrap_socket(raw, server_hostname=name) as s:
            der = s.getpeercert(binary_form=True)
            assert s.recv(100).startswith(b"220 ")
            return der


def der_of(path):
    return ssl.PEM_cert_to_DER_cert(path.read_text())


CONFIG = """hostname = mx.test.example
[listener 127.0.0.1:{{port}}]
tls_cert = {d}/default.pem
tls_key = {d}/default.key
tls_cert_for = mx.example.org {d}/mx.pem {d}/mx.key
tls_cert_for = *.example.net, example.net   {d}/wild.pem {d}/wild.key
[listener 127.0.0.1:{smtps}]
tls = implicit
tls_cert = {d}/default.pem
tls_key = {d}/default.key
tls_cert_for = mx.example.org {d}/mx.pem {d}/mx.key
"""


@pytest.fixture
def certs(tmp_path):
    d = tmp_path / "etc"
    d.mkdir()
    for tag in NAMES:
        make_cert(d, tag)
    return d


def start(ternd_factory, certs):
    smtps = free_port()
    t = ternd_factory(config=CONFIG.format(smtps=smtps, d=certs), listen=False)
    t.smtps_port = smtps
    wait_until(lambda: is_listening(smtps), timeout=10, what="smtps listener")
    return t


@pytest.fixture
def srv(ternd_factory, certs):
    return start(ternd_factory, certs)


@pytest.mark.parametrize("name,tag", [
    (None, "default"),
    ("mx.example.org", "mx"),
    ("a.example.net", "wild"),
    ("example.net", "wild"),
    ("a.b.example.net", "default"),   # a wildcard is one label
    ("example.org", "default"),
    ("unknown.test", "default"),
    ("mx.example.org.evil", "default"),
])
def test_starttls_picks_certificate(srv, certs, name, tag):
    der = starttls_cert(srv.port, name)
    assert der == der_of(certs / (tag + ".pem")), describe(der)
    text = describe(der)
    cn, san = NAMES[tag]
    assert "CN = " + cn in text, text
    for dns in san.split(","):
        assert dns in text, text


def test_tls12_picks_certificate(srv, certs):
    der = starttls_cert(srv.port, "mx.example.org", maxver=ssl.TLSVersion.TLSv1_2)
    assert cn_of(der) == "mx.example.org"
    der = starttls_cert(srv.port, "zzz.example.net", maxver=ssl.TLSVersion.TLSv1_2)
    assert cn_of(der) == "*.example.net"
    der = starttls_cert(srv.port, None, maxver=ssl.TLSVersion.TLSv1_2)
    assert cn_of(der) == "default.test"


def test_implicit_tls_picks_certificate(srv, certs):
    assert cn_of(implicit_cert(srv.smtps_port, "mx.example.org")) == "mx.example.org"
    assert cn_of(implicit_cert(srv.smtps_port, None)) == "default.test"
    # this listener has no wildcard entry
    assert cn_of(implicit_cert(srv.smtps_port, "a.example.net")) == "default.test"


def test_mail_after_sni_handshake(srv):
    c = SMTPConn("127.0.0.1", srv.port, timeout=10)
    c.greet()
    c.ehlo()
    c.cmd("STARTTLS", 220)
    c.sock = client_ctx().wrap_socket(c.sock, server_hostname="smtp.example.net")
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<b@example.org>", 250)
    c.cmd("DATA", 354)
    c.send("Subject: sni\r\n\r\nhello\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    c.close()
    srv.wait_mail("b@example.org")
    wait_until(lambda: 'sni="smtp.example.net"' in srv.log(), what="sni in the log")


def test_openssl_s_client_servername_case_insensitive(srv):
    need_tool("openssl")
    r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                        "127.0.0.1:%d" % srv.port, "-servername", "MX.Example.ORG",
                        "-quiet"],
                       input="EHLO s-client.test\r\nQUIT\r\n", capture_output=True,
                       text=True, timeout=20)
    assert "250" in r.stdout and "221" in r.stdout, r.stdout + r.stderr
    assert "CN = mx.example.org" in r.stderr or "CN=mx.example.org" in r.stderr, r.stderr
    r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                        "127.0.0.1:%d" % srv.port, "-servername", "nothing.test"],
                       input="QUIT\r\n", capture_output=True, text=True, timeout=20)
    assert "subject=CN = default.test" in r.stdout, r.stdout + r.stderr


def reload(t, before):
    """SIGHUP, then wait for one more reload line (ok or failed) than before."""
    t.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: t.log().count("event=reload ") > before, timeout=10, what="reload")
    time.sleep(0.2)  # the tls-reload lines come first; give the loop a moment anyway


def test_sighup_reload(ternd_factory, certs):
    t = start(ternd_factory, certs)
    conf = t.config_path
    good = conf.read_text()
    mx_line = "tls_cert_for = mx.example.org {d}/mx.pem {d}/mx.key\n".format(d=certs)
    other = "tls_cert_for = other.example {d}/other.pem {d}/other.key".format(d=certs)
    assert cn_of(starttls_cert(t.port, "other.example")) == "default.test"

    # 1. a new name and a renewed default certificate are served after SIGHUP
    make_cert(certs, "default")
    conf.write_text(good.replace(mx_line, mx_line + other + "\n", 1))
    reload(t, 0)
    assert "event=tls-reload result=ok listener=127.0.0.1:%d certificates=4" % t.port \
        in t.log(), t.log()
    assert starttls_cert(t.port, "other.example") == der_of(certs / "other.pem")
    assert starttls_cert(t.port, None) == der_of(certs / "default.pem")
    assert cn_of(starttls_cert(t.port, "mx.example.org")) == "mx.example.org"
    served = conf.read_text()
    n = served.splitlines().index(other) + 1

    # 2. a certificate file that does not load: the listener keeps its whole old set,
    # the error names the config file and line
    (certs / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnonsense\n")
    conf.write_text(served.replace(other, other.replace("other.pem", "broken.pem")))
    reload(t, 1)
    want = "event=tls-reload result=failed listener=127.0.0.1:%d error=\"%s:%d: " \
        "tls_cert_for other.example: %s / %s: " % (t.port, conf, n, certs / "broken.pem",
                                                   certs / "other.key")
    assert want in t.log(), t.log()
    assert starttls_cert(t.port, "other.example") == der_of(certs / "other.pem")
    assert cn_of(starttls_cert(t.port, "mx.example.org")) == "mx.example.org"

    # 3. a key that does not belong to the certificate: the same
    conf.write_text(served.replace(other, other.replace("other.key", "mx.key")))
    reload(t, 2)
    assert t.log().count("event=tls-reload result=failed listener=127.0.0.1:%d " % t.port) == 2
    assert starttls_cert(t.port, "other.example") == der_of(certs / "other.pem")

    # 4. a config file with an error: nothing changes, FILE:LINE logged
    conf.write_text(served.replace(other, other.replace("other.example", "other_example")))
    reload(t, 3)
    assert "event=reload result=failed error=\"%s:%d: tls_cert_for: 'other_example'" \
        % (conf, n) in t.log(), t.log()
    assert starttls_cert(t.port, "other.example") == der_of(certs / "other.pem")

    # 5. the name removed again: back to the default certificate
    conf.write_text(good)
    reload(t, 4)
    assert starttls_cert(t.port, "other.example") == der_of(certs / "default.pem")
    assert cn_of(implicit_cert(t.smtps_port, "mx.example.org")) == "mx.example.org"


def test_bad_sni_certificate_stops_startup(tmp_path, certs):
    conf = certs / "bad.conf"
    (certs / "empty.pem").write_text("")
    conf.write_text("[listener 127.0.0.1:%d]\ntls_cert = default.pem\ntls_key = default.key\n"
                    "tls_cert_for = mx.example.org mx.pem mx.key\n"
                    "tls_cert_for = x.example empty.pem other.key\n" % free_port())
    proc = subprocess.Popen([str(TERND), "-c", str(conf), "--data", str(tmp_path / "var")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("ternd kept running with a certificate it cannot load")
    assert proc.returncode != 0
    assert "%s:5: tls_cert_for x.example: %s / " % (conf, certs / "empty.pem") in err, err


@pytest.mark.parametrize("body,line,want", [
    ("tls_cert_for = mx.example.org mx.pem mx.key\n", 2,
     "tls_cert_for needs tls_cert and tls_key"),
    ("tls_cert = default.pem\ntls_key = default.key\n"
     "tls_cert_for = mx.example.org mx.pem mx.key\n"
     "tls_cert_for = MX.example.org other.pem other.key\n", 5,
     "mx.example.org given twice (first on line 4)"),
    ("tls_cert = default.pem\ntls_key = default.key\n"
     "tls_cert_for = *.*.example mx.pem mx.key\n", 4, "not a host name or *.domain"),
    ("tls_cert = default.pem\ntls_key = default.key\n"
     "tls_cert_for = mx.example.org mx.pem\n", 4, "expected NAME[, NAME...] CERTFILE KEYFILE"),
    ("tls_cert = default.pem\ntls_key = default.key\n"
     "tls_cert_for = mx.example.org nothere.pem mx.key\n", 4, "cannot read"),
])
def test_check_config_errors(certs, body, line, want):
    conf = certs / "c.conf"
    conf.write_text("[listener 127.0.0.1:2600]\n" + body)
    r = tern_cli("check-config", str(conf))
    assert r.returncode == 78, r.stderr
    assert "%s:%d: " % (conf, line) in r.stderr and want in r.stderr, r.stderr


def test_check_config_ok(certs):
    conf = certs / "c.conf"
    conf.write_text("[listener 127.0.0.1:2600]\ntls_cert = default.pem\n"
                    "tls_key = default.key\n"
                    "tls_cert_for = mx.example.org, *.example.org mx.pem mx.key\n")
    r = tern_cli("check-config", str(conf))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("body,line,want", [
    # a key that is not the certificate's: the loader reads both files fine
    ("tls_cert = default.pem\ntls_key = mx.key\n", 2, "default.pem / %s/mx.key: "),
    ("tls_cert = default.pem\ntls_key = default.key\n"
     "tls_cert_for = mx.example.org mx.pem other.key\n", 4,
     "tls_cert_for mx.example.org: %s/mx.pem / "),
    ("tls_cert = empty.pem\ntls_key = default.key\n", 2, "empty.pem / %s/default.key: "),
])
@pytest.mark.parametrize("tool", ["tern", "ternd"])
def test_check_config_loads_certificates(certs, body, line, want, tool):
    """check-config and ternd --check load each certificate and key as ternd would:
    a mismatched key or a file that is no PEM is caught before a restart."""
    (certs / "empty.pem").write_text("not a certificate\n")
    conf = certs / "c.conf"
    conf.write_text("[listener 127.0.0.1:2600]\n" + body)
    if tool == "tern":
        r = tern_cli("check-config", str(conf))
        err = r.stderr
    else:
        r = subprocess.run([str(TERND), "--check", "-c", str(conf)], capture_output=True,
                           text=True, timeout=10)
        err = r.stderr
    assert r.returncode == 78, err
    assert "%s:%d: tls_" % (conf, line) in err, err
    assert want % certs in err and "(listener 127.0.0.1:2600)" in err, err
    assert "ok" not in r.stdout


def test_ternd_check_ok_with_certificates(certs):
    conf = certs / "c.conf"
    conf.write_text("[listener 127.0.0.1:2600]\ntls_cert = default.pem\n"
                    "tls_key = default.key\n"
                    "tls_cert_for = mx.example.org mx.pem mx.key\n")
    r = subprocess.run([str(TERND), "--check", "-c", str(conf)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0 and r.stdout == "%s: ok\n" % conf, r.stderr
