"""ternd as a daemon: maildrop pickup of `tern sendmail` mail written while ternd was
down, SIGHUP reload (good file applied, bad file kept out), several listeners, IPv6."""

import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import SMTPConn, TERN, free_port, maildir_files, maildir_new, wait_until


def sendmail(*args, input, env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("TERN_")}
    e.update(env)
    return subprocess.run([str(TERN), "sendmail", *args], input=input, capture_output=True,
                          env=e, timeout=30)


def test_maildrop_picked_up_when_ternd_starts(ternd_factory, tmp_path):
    data = tmp_path / "var"
    dead = free_port()  # nothing listens here: sendmail falls back to the maildrop
    r = sendmail("-i", "-f", "cron@example.org", "ops@example.com", input=(
        b"Subject: nightly\nTo: ops@example.com\n\nline one\n.\nlast line\n"),
        env={"TERN_SERVER": "127.0.0.1:%d" % dead, "TERN_MAILDROP": str(data / "maildrop")})
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(data / "maildrop" / "new")) == 1
    t = ternd_factory(data_dir=data)
    (path,) = t.wait_mail("ops@example.com")
    raw = open(path, "rb").read()
    assert raw.startswith(b"Return-Path: <cron@example.org>\nDelivered-To: ops@example.com\n")
    assert b"Received: by " in raw and b"(tern sendmail)" in raw
    assert b"Subject: nightly\n" in raw
    assert raw.endswith(b"\n\nline one\n.\nlast line\n")
    wait_until(lambda: os.listdir(data / "maildrop" / "new") == [], what="maildrop emptied")


def test_maildrop_garbage_is_quarantined(ternd_factory, tmp_path):
    data = tmp_path / "var"
    new = data / "maildrop" / "new"
    new.mkdir(parents=True)
    (new / "bad1").write_bytes(b"X-Tern-Sender: <a@b>\nno blank line and no recipient")
    (new / "bad2").write_bytes(b"Something-Else: x\n\nbody\n")
    t = ternd_factory(data_dir=data)
    wait_until(lambda: sorted(os.listdir(data / "maildrop" / "bad")) == ["bad1", "bad2"]
               if (data / "maildrop" / "bad").exists() else False, what="quarantine")
    assert os.listdir(new) == []
    assert "event=pickup-quarantined" in t.log()


CONF = """
hostname = first.example
[listener 127.0.0.1:{port}]
lenient_lf = no
"""


def test_sighup_reload_applies_good_config_and_keeps_old_on_error(ternd_factory):
    t = ternd_factory(config=CONF, listen=False)
    with SMTPConn(t.host, t.port) as c:
        assert "first.example" in c.greet().text
    t.config_path.write_text(CONF.replace("first.example", "second.example")
                             .replace("{port}", str(t.port)))
    t.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "event=reload result=ok" in t.log(), what="reload")
    with SMTPConn(t.host, t.port) as c:
        assert "second.example" in c.greet().text
    t.config_path.write_text("hostname = third.example\nno_such_key = 1\n")
    t.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "event=reload result=failed" in t.log(), what="failed reload")
    assert ":2: " in t.log()  # file:line of the error is logged
    with SMTPConn(t.host, t.port) as c:
        assert "second.example" in c.greet().text  # old config kept


def test_several_listeners_and_ipv6(ternd_factory):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        p6 = s.getsockname()[1]
        s.close()
    except OSError:
        pytest.skip("::1 not available")
    p4 = free_port()
    t = ternd_factory(args=["--listen", "[::1]:%d" % p6])
    # The fixture's own --listen comes first; ours adds to it.
    with SMTPConn("127.0.0.1", t.port) as c:
        assert c.greet().code == 220
    with SMTPConn("::1", p6) as c:
        c.greet()
        c.ehlo()
        c.cmd("MAIL FROM:<six@example.org>", 250)
        c.cmd("RCPT TO:<v6@example.com>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: over v6\r\n\r\nhello\r\n.\r\n")
        c.expect(250)
    (path,) = t.wait_mail("v6@example.com")
    assert b"[::1]" in open(path, "rb").read()
    assert p4  # a port that is not ours stays closed
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p4), timeout=1).close()


def test_threads_are_named(ternd_factory):
    """`top -H` / `ps -L` tell ternd's threads apart: each long-lived one has a name."""
    t = ternd_factory()
    task = f"/proc/{t.proc.pid}/task"

    def names():
        out = set()
        for tid in os.listdir(task):
            try:
                with open(f"{task}/{tid}/comm") as f:
                    out.add(f.read().strip())
            except FileNotFoundError:
                pass
        return out

    want = {"direct-commit", "direct-publish", "direct-wb", "spool-commit", "local", "relay",
            "control"}
    wait_until(lambda: want <= names(), what=f"thread names {want}")
