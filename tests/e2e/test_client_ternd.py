"""`tern send` and `tern sendmail` against ternd itself (not only aiosmtpd):
attachments byte for byte, UTF-8 subject, Bcc delivered but absent from headers,
multipart/alternative, and sendmail -t while ternd is stopped, delivered once it starts."""

import email
import email.policy
import os
import subprocess

from conftest import TERN, free_port


def tern(*args, input=None, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("TERN_")}
    e.update(env or {})
    return subprocess.run([str(TERN), *args], input=input, capture_output=True, env=e,
                          timeout=30)


def parse(path):
    return email.message_from_bytes(open(path, "rb").read(), policy=email.policy.default)


def test_send_roundtrip_through_ternd(ternd, tmp_path):
    blob = bytes(range(256)) * 40 + b"\r\n.\r\n\x00end"
    (tmp_path / "data.bin").write_bytes(blob)
    (tmp_path / "page.html").write_text("<p>caf\u00e9</p>")
    r = tern("send", "--server", "%s:%d" % (ternd.host, ternd.port), "--tls", "none",
             "--from", "me@example.org", "--to", "to@example.com", "--cc", "cc@example.com",
             "--bcc", "hidden@example.com", "--subject", "R\u00e9sum\u00e9 \u2713",
             "--body", "Gr\u00fc\u00dfe\n.leading dot\n", "--html", str(tmp_path / "page.html"),
             "--attach", str(tmp_path / "data.bin"), "-v")
    assert r.returncode == 0, r.stderr
    assert b"C: MAIL FROM:<me@example.org>" in r.stderr + r.stdout
    paths = {a: ternd.wait_mail(a)[0] for a in ("to@example.com", "cc@example.com",
                                                  "hidden@example.com")}
    for p in paths.values():
        raw = open(p, "rb").read()
        assert b"hidden@example.com" not in raw.split(b"\n\n", 1)[0].replace(
            b"Delivered-To: hidden@example.com", b"")
        m = parse(p)
        assert m["Subject"] == "R\u00e9sum\u00e9 \u2713"
        assert "Bcc" not in m
        atts = [part for part in m.iter_attachments()]
        assert len(atts) == 1 and atts[0].get_content() == blob
        alt = m.get_body(preferencelist=("related", "html", "plain"))
        assert alt is not None
        plain = m.get_body(preferencelist=("plain",)).get_content()
        assert "Gr\u00fc\u00dfe" in plain and ".leading dot" in plain
        html = m.get_body(preferencelist=("html",)).get_content()
        assert "caf\u00e9" in html


def test_sendmail_t_while_ternd_down_then_delivered(ternd_factory, tmp_path):
    data = tmp_path / "var"
    mail = (b"From: cron@example.org\nTo: root@example.com\nBcc: audit@example.com\n"
            b"Subject: backup\n\nbackup done\n")
    r = tern("sendmail", "-t", input=mail,
             env={"TERN_SERVER": "127.0.0.1:%d" % free_port(),
                  "TERN_MAILDROP": str(data / "maildrop")})
    assert r.returncode == 0, r.stderr
    t = ternd_factory(data_dir=data)
    (root,) = t.wait_mail("root@example.com")
    (audit,) = t.wait_mail("audit@example.com")
    for p in (root, audit):
        raw = open(p, "rb").read()
        assert b"\nBcc:" not in raw and raw.endswith(b"\n\nbackup done\n")
    # Now ternd is up: the same command goes over SMTP, not the maildrop.
    r = tern("sendmail", "-t", input=mail.replace(b"backup done", b"second"),
             env={"TERN_SERVER": "%s:%d" % (t.host, t.port),
                  "TERN_MAILDROP": str(data / "maildrop")})
    assert r.returncode == 0, r.stderr
    assert len(t.wait_mail("root@example.com", n=2)) == 2
