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
