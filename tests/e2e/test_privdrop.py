"""Privilege drop (issue 5): ternd started as root with `user = nobody` binds its
port, then runs as nobody (uid and gid in /proc/PID/status) and still receives and
delivers mail into a data directory that user owns. Skipped when not root.
(Started as a normal user ternd keeps its uid: every other e2e test covers that.)"""

import os
import pwd
import shutil
import smtplib
import tempfile
from pathlib import Path

import pytest

from conftest import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def status_ids(pid, key):
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith(key + ":"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError("no %s line" % key)


@pytest.fixture
def nobody_data():
    """A data directory nobody can reach: pytest's tmp_path lives under a 0700
    directory of root's, so this one is made directly in /tmp."""
    nb = pwd.getpwnam("nobody")
    d = Path(tempfile.mkdtemp(prefix="tern-privdrop-", dir="/tmp"))
    os.chmod(d, 0o755)
    data = d / "var"
    data.mkdir()
    os.chown(data, nb.pw_uid, nb.pw_gid)
    yield data, nb
    shutil.rmtree(d, ignore_errors=True)


def test_root_drops_to_configured_user(ternd_factory, nobody_data):
    data, nb = nobody_data
    t = ternd_factory(config="user = nobody\ndata_dir = %s\n"
                             "[listener 127.0.0.1:{port}]\n" % data,
                      listen=False, data_dir=data)
    pid = t.proc.pid
    assert status_ids(pid, "Uid") == [nb.pw_uid] * 4   # real, effective, saved, fs
    assert status_ids(pid, "Gid") == [nb.pw_gid] * 4
    assert status_ids(pid, "Groups") in ([nb.pw_gid], [])
    assert "event=privileges-dropped user=nobody" in t.log()
    with smtplib.SMTP(t.host, t.port, timeout=10) as s:
        s.sendmail("a@example.com", ["bob@example.com"], b"Subject: dropped\r\n\r\nhi\r\n")
    f = t.wait_mail("bob@example.com")[0]
    assert f.stat().st_uid == nb.pw_uid
    assert b"Subject: dropped" in f.read_bytes()
    # the whole spool belongs to the unprivileged user: nothing was made as root
    for p in data.rglob("*"):
        assert p.stat().st_uid == nb.pw_uid, p


def test_unknown_user_refuses_to_start(ternd_factory, tmp_path):
    t = ternd_factory(config="user = no-such-user-tern\n[listener 127.0.0.1:{port}]\n",
                      listen=False, start=False)
    import subprocess
    r = subprocess.run(t.argv(), cwd=t.tmp, capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "no-such-user-tern" in r.stderr


def test_sighup_names_a_key_only_root_can_read(nobody_data):
    """Keys are read as root at start, but SIGHUP reads them as the user ternd runs
    as by then: a root-only key fails to reload, the old certificate stays in use, and
    the log says which file and what to do. Readable by the user's group, it loads."""
    import signal
    import ssl
    import subprocess

    from conftest import Ternd

    data, nb = nobody_data
    etc = data.parent / "etc"
    etc.mkdir()
    os.chmod(etc, 0o755)
    cert, key = etc / "mx.pem", etc / "mx.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=mx.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    os.chmod(cert, 0o644)
    os.chmod(key, 0o600)  # root's only
    t = Ternd(data.parent / "t", config="user = nobody\ndata_dir = %s\n"
              "[listener 127.0.0.1:{port}]\ntls_cert = %s\ntls_key = %s\n" % (data, cert, key),
              listen=False, data_dir=data)
    os.chmod(t.tmp, 0o755)
    try:
        t.start()
        os.kill(t.proc.pid, signal.SIGHUP)
        wait_until(lambda: "event=reload result=" in t.log(), what="reload line")
        log = t.log()
        assert "event=reload result=failed" in log, log
        assert "cannot read '%s': Permission denied" % key in log, log
        assert 'hint="ternd runs as uid %d since start-up' % nb.pw_uid in log, log
        # the certificate loaded at start still serves STARTTLS
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP(t.host, t.port, timeout=10) as s:
            s.starttls(context=ctx)
            assert s.noop()[0] == 250
        os.chown(key, 0, nb.pw_gid)
        os.chmod(key, 0o640)
        os.kill(t.proc.pid, signal.SIGHUP)
        wait_until(lambda: "event=tls-reload result=ok" in t.log(), what="reload ok")
        assert "event=reload result=ok" in t.log()
    finally:
        t.stop()
