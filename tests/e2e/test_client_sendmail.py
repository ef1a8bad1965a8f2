"""End-to-end tests of `tern sendmail` (and the `sendmail` link): cron-style
injection with -t to aiosmtpd on a custom port via TERN_SERVER, recipients as
arguments, and the durable maildrop fallback when no server is reachable."""

import email
import email.policy
import os
import subprocess
from pathlib import Path

import pytest

from conftest import free_port

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("TERN_BUILD", "build"))
BUILD = BUILD if BUILD.is_absolute() else REPO / BUILD
TERN = BUILD / "tern"


class Recorder:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos),
                               bytes(envelope.original_content)))
        return "250 2.0.0 ok"


@pytest.fixture
def smtpd():
    h = Recorder()
    port = free_port()
    ctl = aiosmtpd_controller.Controller(h, hostname="127.0.0.1", port=port)
    ctl.start()
    yield h, port
    ctl.stop()


def run(argv0, *args, input=b"", env=None, cwd=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("TERN_")}
    e.update(env or {})
    return subprocess.run([str(argv0), *args], input=input, capture_output=True, env=e,
                          cwd=cwd, timeout=30)


CRON_MAIL = (b"To: root@example.org\nCc: Ops <ops@example.org>\nBcc: audit@example.org\n"
             b"Subject: Cron <root@host> backup\n\nbackup done\n.\nafter the dot\n")


def test_sendmail_t_delivers(smtpd):
    h, port = smtpd
    r = run(TERN, "sendmail", "-t", "-oi", "-f", "cron@example.org", input=CRON_MAIL,
            env={"TERN_SERVER": f"127.0.0.1:{port}"})
    assert r.returncode == 0, r.stderr
    mail_from, rcpts, raw = h.envelopes[0]
    assert mail_from == "cron@example.org"
    assert sorted(rcpts) == ["audit@example.org", "ops@example.org", "root@example.org"]
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m["Bcc"] is None and b"audit@" not in raw
    assert m["Date"] and m["Message-ID"] and m["From"] == "cron@example.org"
    assert "after the dot" in m.get_content()  # -oi: a lone dot does not end input


def test_sendmail_link_args_and_dot(smtpd, tmp_path):
    h, port = smtpd
    link = tmp_path / "sendmail"
    link.symlink_to(TERN)
    r = run(link, "-F", "Jörg Cron", "-fjorg@example.org", "a@example.org,b@example.org",
            "-oem", input=b"Subject: hi\n\nline\n.\nnot sent\n",
            env={"TERN_SERVER": f"127.0.0.1:{port}"})
    assert r.returncode == 0, r.stderr
    mail_from, rcpts, raw = h.envelopes[0]
    assert rcpts == ["a@example.org", "b@example.org"]
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m["From"].addresses[0].display_name == "Jörg Cron"
    assert b"not sent" not in raw  # without -i a lone dot ends the message


def test_sendmail_maildrop_when_down(tmp_path):
    drop = tmp_path / "drop"
    r = run(TERN, "sendmail", "-t", "-i", "-f", "cron@example.org", input=CRON_MAIL,
            env={"TERN_SERVER": f"127.0.0.1:{free_port()}", "TERN_MAILDROP": str(drop)})
    assert r.returncode == 0, r.stderr
    files = list((drop / "new").iterdir())
    assert len(files) == 1 and list((drop / "tmp").iterdir()) == []
    data = files[0].read_bytes()
    head, msg = data.split(b"\n\n", 1)
    assert head.split(b"\n") == [b"X-Tern-Sender: <cron@example.org>",
                                 b"X-Tern-Rcpt: <root@example.org>",
                                 b"X-Tern-Rcpt: <ops@example.org>",
                                 b"X-Tern-Rcpt: <audit@example.org>"]
    assert b"\r" not in msg and b"Bcc" not in msg and b"Subject: Cron" in msg


def test_sendmail_default_maildrop_dir(tmp_path):
    r = run(TERN, "sendmail", "x@example.org", input=b"Subject: s\n\nb\n",
            env={"TERN_SERVER": f"127.0.0.1:{free_port()}"}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "var/maildrop/new").iterdir())) == 1


def test_sendmail_no_recipients():
    r = run(TERN, "sendmail", input=b"Subject: s\n\nb\n")
    assert r.returncode == 64
