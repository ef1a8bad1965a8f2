"""End-to-end tests of `tern send`, `tern chat` and `tern check-config` against
aiosmtpd (python3-aiosmtpd), a real SMTP server nobody here wrote, on 127.0.0.1.

What arrives is checked with Python's email package: attachments byte for byte, the
UTF-8 subject decoded, Bcc delivered in the envelope but absent from the headers,
multipart/alternative structure. Exit codes follow sysexits(3)."""

import email
import email.policy
import os
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import free_port

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("TERN_BUILD", "build"))
TERN = (BUILD if BUILD.is_absolute() else REPO / BUILD) / "tern"

EX_OK, EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_UNAVAILABLE, EX_TEMPFAIL = 0, 64, 65, 66, 69, 75


class Recorder:
    """aiosmtpd handler keeping every envelope; can refuse recipients."""

    def __init__(self, refuse_rcpt=None):
        self.envelopes = []
        self.refuse_rcpt = refuse_rcpt
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_rcpt is not None:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.envelopes.append(
                (envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content),
                 list(envelope.mail_options)))
        return "250 2.0.0 queued"


def start_server(handler, **kw):
    port = free_port()
    ctl = aiosmtpd_controller.Controller(handler, hostname="127.0.0.1", port=port, **kw)
    ctl.start()
    return ctl, port


@pytest.fixture
def smtpd():
    handler = Recorder()
    ctl, port = start_server(handler, enable_SMTPUTF8=True)
    yield handler, port
    ctl.stop()


def tern(*args, input=b"", env=None, timeout=30):
    e = dict(os.environ)
    e.pop("TERN_SERVER", None)
    e.pop("TERN_PASSWORD", None)
    if env:
        e.update(env)
    return subprocess.run([str(TERN), *args], input=input, capture_output=True, env=e,
                          timeout=timeout)


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def text(part):
    """Decoded text of a part with line ends normalized (the wire uses CRLF)."""
    return part.get_content().replace("\r\n", "\n")


def test_plain_message_arrives(smtpd):
    h, port = smtpd
    r = tern("send", "--server", f"127.0.0.1:{port}", "--from", "a@example.org",
             "--to", "b@example.org", "--subject", "hi", "--body", "hello\n.dot line\n")
    assert r.returncode == EX_OK, r.stderr
    (mail_from, rcpts, raw, _), = h.envelopes
    assert mail_from == "a@example.org" and rcpts == ["b@example.org"]
    m = parse(raw)
    assert m["Subject"] == "hi"
    assert m["Message-ID"] and m["Date"] and m["MIME-Version"] == "1.0"
    assert text(m) == "hello\n.dot line\n"
    assert b"\r\n" in raw


def test_attachments_utf8_subject_bcc(smtpd, tmp_path):
    h, port = smtpd
    blob = bytes(range(256)) * 40 + b"\x00\r\n\r.\n"
    (tmp_path / "data.bin").write_bytes(blob)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
    (tmp_path / "pic").write_bytes(png)
    subject = "Grüße aus Köln – ünïcödé 😀 and a rather long subject to force folding"
    r = tern("send", "--server", f"127.0.0.1:{port}", "--from", "Änne <a@example.org>",
             "--to", "b@example.org,c@example.org", "--cc", "d@example.org",
             "--bcc", "hidden@example.org", "--subject", subject,
             "--body", "Body with ümlauts\n", "--attach", str(tmp_path / "data.bin"),
             "--attach", str(tmp_path / "pic"))
    assert r.returncode == EX_OK, r.stderr
    (mail_from, rcpts, raw, opts), = h.envelopes
    assert sorted(rcpts) == ["b@example.org", "c@example.org", "d@example.org",
                             "hidden@example.org"]
    assert b"hidden@example.org" not in raw
    m = parse(raw)
    assert m["Bcc"] is None
    assert str(m["Subject"]) == subject
    assert m["From"].addresses[0].display_name == "Änne"
    assert m.get_content_type() == "multipart/mixed"
    parts = list(m.iter_attachments())
    assert [p.get_filename() for p in parts] == ["data.bin", "pic"]
    assert parts[0].get_payload(decode=True) == blob
    assert parts[1].get_payload(decode=True) == png
    assert parts[1].get_content_type() == "image/png"
    assert text(m.get_body(("plain",))) == "Body with ümlauts\n"
    assert "BODY=8BITMIME" in opts
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_html_alternative(smtpd, tmp_path):
    h, port = smtpd
    (tmp_path / "m.html").write_text("<p>Hello <b>world</b></p>\n")
    r = tern("send", "--server", f"127.0.0.1:{port}", "--from", "a@x.org", "--to", "b@x.org",
             "--subject", "alt", "--body", "Hello world\n", "--html", str(tmp_path / "m.html"))
    assert r.returncode == EX_OK, r.stderr
    m = parse(h.envelopes[0][2])
    assert m.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]
    assert "<b>world</b>" in text(m.get_body(("html",)))
    assert text(m.get_body(("plain",))) == "Hello world\n"


def test_long_lines_become_quoted_printable(smtpd):
    h, port = smtpd
    body = "x" * 3000 + "\n"
    r = tern("send", "--server", f"127.0.0.1:{port}", "--from", "a@x.org", "--to", "b@x.org",
             "--body", body)
    assert r.returncode == EX_OK, r.stderr
    raw = h.envelopes[0][2]
    m = parse(raw)
    assert m["Content-Transfer-Encoding"] == "quoted-printable"
    assert text(m) == body
    assert max(len(line) for line in raw.split(b"\r\n")) <= 76


def test_body_from_stdin_and_header(smtpd):
    h, port = smtpd
    r = tern("send", "--server", f"127.0.0.1:{port}", "--from", "a@x.org", "--to", "b@x.org",
             "-H", "X-Mailer-Test: yes", input=b"from stdin\n")
    assert r.returncode == EX_OK, r.stderr
    m = parse(h.envelopes[0][2])
    assert text(m) == "from stdin\n"
    assert m["X-Mailer-Test"] == "yes"


def test_verbose_dialogue(smtpd):
    h, port = smtpd
    r = tern("send", "-v", "--server", f"127.0.0.1:{port}", "--from", "a@x.org",
             "--to", "b@x.org", "--body", "hi")
    assert r.returncode == EX_OK, r.stderr
    out = r.stdout.decode() + r.stderr.decode()
    assert "C: EHLO" in out and "C: MAIL FROM:<a@x.org>" in out and "S: 250" in out
    assert "C: RCPT TO:<b@x.org>" in out and "C: QUIT" in out and "S: 221" in out


def test_dry_run_sends_nothing(smtpd):
    h, port = smtpd
    r = tern("send", "--dry-run", "--server", f"127.0.0.1:{port}", "--from", "a@x.org",
             "--to", "b@x.org", "--bcc", "c@x.org", "--subject", "dry", "--body", "text")
    assert r.returncode == EX_OK, r.stderr
    m = parse(r.stdout)
    assert m["Subject"] == "dry" and m["Bcc"] is None
    assert h.envelopes == []


def test_message_file_as_is(smtpd, tmp_path):
    h, port = smtpd
    msg = b"From: a@x.org\nTo: b@x.org\nBcc: secret@x.org\nSubject: file\n\nline\n"
    (tmp_path / "m.eml").write_bytes(msg)
    r = tern("send", "--server", f"127.0.0.1:{port}", "--message", str(tmp_path / "m.eml"))
    assert r.returncode == EX_OK, r.stderr
    mail_from, rcpts, raw, _ = h.envelopes[0]
    assert mail_from == "a@x.org" and sorted(rcpts) == ["b@x.org", "secret@x.org"]
    assert b"secret" not in raw and b"Subject: file\r\n" in raw


def test_auth_plain_masked(tmp_path):
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((mechanism, auth_data.login, auth_data.password))
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)

    h = Recorder()
    ctl, port = start_server(h, authenticator=authenticator, auth_require_tls=False)
    try:
        (tmp_path / "pw").write_text("s3cret\n")
        r = tern("send", "-v", "--server", f"127.0.0.1:{port}", "--auth", "joe",
                 "--password-file", str(tmp_path / "pw"), "--from", "a@x.org",
                 "--to", "b@x.org", "--body", "hi")
        assert r.returncode == EX_OK, r.stderr
        out = r.stderr.decode()
        assert "C: AUTH PLAIN ****" in out and "s3cret" not in out
        assert seen == [("PLAIN", b"joe", b"s3cret")]
        r = tern("send", "--server", f"127.0.0.1:{port}", "--auth", "joe", "--from", "a@x.org",
                 "--to", "b@x.org", "--body", "hi", env={"TERN_PASSWORD": "wrong"})
        assert r.returncode == EX_UNAVAILABLE
        assert b"AUTH PLAIN **** failed: 535" in r.stderr
    finally:
        ctl.stop()


def test_rejected_recipient_exit_69():
    h = Recorder(refuse_rcpt="550 5.1.1 no such user")
    ctl, port = start_server(h)
    try:
        r = tern("send", "--server", f"127.0.0.1:{port}", "--from", "a@x.org",
                 "--to", "nobody@x.org", "--body", "hi")
        assert r.returncode == EX_UNAVAILABLE
        assert b"RCPT TO:<nobody@x.org> failed: 550 5.1.1 no such user" in r.stderr
        assert h.envelopes == []
    finally:
        ctl.stop()


def test_tempfail_recipient_exit_75():
    h = Recorder(refuse_rcpt="451 4.3.0 try later")
    ctl, port = start_server(h)
    try:
        r = tern("send", "--server", f"127.0.0.1:{port}", "--from", "a@x.org",
                 "--to", "b@x.org", "--body", "hi")
        assert r.returncode == EX_TEMPFAIL
    finally:
        ctl.stop()


def test_connection_refused_exit_75():
    r = tern("send", "--server", f"127.0.0.1:{free_port()}", "--from", "a@x.org",
             "--to", "b@x.org", "--body", "hi")
    assert r.returncode == EX_TEMPFAIL
    assert b"Connection refused" in r.stderr


def test_usage_and_input_errors(tmp_path):
    assert tern("send", "--to", "b@x.org", "--body", "x").returncode == EX_USAGE
    assert tern("send", "--bogus").returncode == EX_USAGE
    r = tern("send", "--from", "a@x.org", "--to", "not an address", "--body", "x")
    assert r.returncode == EX_DATAERR
    r = tern("send", "--from", "a@x.org", "--to", "b@x.org", "--attach",
             str(tmp_path / "missing"), "--dry-run")
    assert r.returncode == EX_NOINPUT


def test_smtputf8_address(smtpd):
    h, port = smtpd
    r = tern("send", "--server", f"127.0.0.1:{port}", "--from", "a@x.org",
             "--to", "jösé@exämple.org", "--body", "hi")
    assert r.returncode == EX_OK, r.stderr
    mail_from, rcpts, raw, opts = h.envelopes[0]
    assert rcpts == ["jösé@exämple.org"] and "SMTPUTF8" in opts


def test_chat_piped(smtpd):
    h, port = smtpd
    script = (b"EHLO me.example\nMAIL FROM:<a@x.org>\nRCPT TO:<b@x.org>\nDATA\n"
              b"Subject: chat\n\n.leading dot\nbody\n.\nQUIT\n")
    r = tern("chat", f"127.0.0.1:{port}", input=script)
    assert r.returncode == EX_OK, r.stderr
    out = r.stdout.decode()
    assert "S: 220" in out
    assert "250 2.1.5 -> OK: recipient accepted" in out
    assert "354 -> go on: send the message" in out
    assert "250 2.0.0 -> OK: message accepted for delivery" in out
    assert "221" in out
    m = parse(h.envelopes[0][2])
    assert m["Subject"] == "chat"
    assert text(m) == ".leading dot\nbody\n"


def test_chat_explains_errors(smtpd):
    h, port = smtpd
    r = tern("chat", f"127.0.0.1:{port}", input=b"FOO\nRCPT TO:<b@x.org>\n")
    assert r.returncode == EX_OK, r.stderr
    out = r.stdout.decode()
    assert "500 -> permanent failure: syntax error, command unrecognized" in out
    assert "503" in out and "C: QUIT" in out


def test_check_config(tmp_path):
    good = tmp_path / "good.conf"
    good.write_text("")
    r = tern("check-config", str(good))
    assert r.returncode == 0 and r.stdout.decode() == f"{good}: ok\n"
    bad = tmp_path / "bad.conf"
    bad.write_text("\nthis is not a setting\n")
    r = tern("check-config", str(bad))
    assert r.returncode == 78
    assert r.stderr.decode().startswith(f"{bad}:2: ")


def test_help_and_passwd():
    r = tern("--help")
    assert r.returncode == 0 and b"send" in r.stdout and b"chat" in r.stdout
    r = tern("passwd", input=b"hunter2\n")
    assert r.returncode == 0
    h = r.stdout.decode().strip()
    assert h.startswith("$y$")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated, still in Debian 12's Python 3.11
    assert crypt.crypt("hunter2", h) == h


@pytest.fixture
def tls_smtpd(tmp_path):
    import ssl
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    h = Recorder()

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=auth_data.password == b"pw", handled=False)

    ctl, port = start_server(h, tls_context=ctx, authenticator=authenticator)
    yield h, port, cert
    ctl.stop()


def test_starttls_verification(tls_smtpd):
    h, port, cert = tls_smtpd
    args = ["send", "--server", f"localhost:{port}", "--from", "a@x.org", "--to", "b@x.org",
            "--body", "over tls"]
    r = tern(*args, env={"SSL_CERT_FILE": "/nonexistent"})
    assert r.returncode == EX_UNAVAILABLE and b"not trusted" in r.stderr
    assert h.envelopes == []
    r = tern(*args, "--insecure", "--tls", "starttls")
    assert r.returncode == EX_OK, r.stderr
    r = tern(*args, "-v", "--auth", "joe",
             env={"SSL_CERT_FILE": str(cert), "TERN_PASSWORD": "pw"})
    assert r.returncode == EX_OK, r.stderr
    err = r.stderr.decode()
    assert "C: STARTTLS" in err and "*: TLS" in err and "C: AUTH PLAIN ****" in err
    assert len(h.envelopes) == 2


def test_chat_starttls_and_auth(tls_smtpd):
    h, port, cert = tls_smtpd
    r = tern("chat", "--insecure", f"127.0.0.1:{port}",
             input=b"EHLO me\nstarttls\nEHLO me\nauth plain joe\npw\nQUIT\n")
    assert r.returncode == EX_OK, r.stderr
    out = r.stdout.decode()
    assert "TLS is on" in out
    assert "C: AUTH PLAIN ****" in out and "235" in out and "pw\n" not in out
