"""Durability faults (issue 3): nothing acknowledged is ever lost, and a failure to
store is never answered 250. Fault injection three ways: ternd's own TERN_FAULT hook,
an LD_PRELOAD shim (tests/e2e/faultshim.c: ENOSPC, short writes, fsync EIO), and a
real full disk (a small tmpfs, root only). Also: corrupted queue files at start-up
are quarantined, and kill -9 under load, repeated.

Longer versions: TERN_STRESS_KILLS=30 (make stress) for the kill -9 loop;
tests/stress/power_loss.sh (make stress) for the power-loss image test."""

import os
import re
import random
import shutil
import smtplib
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, all_stored, maildir_files, read_stored, wait_until

SHIM_SRC = REPO / "tests" / "e2e" / "faultshim.c"


def spool_files(srv):
    """Files left in incoming/ and queue/ (orphans if nothing was acknowledged)."""
    out = []
    for sub in ("incoming", "queue"):
        d = srv.data_dir / "spool" / sub
        if d.is_dir():
            out += [p for p in d.iterdir()]
    return out


def send(srv, subject, body=b"body\r\n", rcpt="alice@example.com"):
    """Send one message over a raw session; return the end-of-data reply."""
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<s@example.net>", 250)
    c.cmd("RCPT TO:<%s>" % rcpt, 250)
    r = c.cmd("DATA")
    if r.code == 354:
        c.send(b"Subject: " + subject.encode() + b"\r\n\r\n" + body + b".\r\n")
        r = c.reply()
    c.cmd("QUIT", 221)
    c.close()
    return r


def still_serves(srv):
    with srv.connect() as c:
        c.cmd("NOOP", 250)


# ---------------------------------------------------------------------------
# TERN_FAULT: the spool's own hook


@pytest.mark.parametrize("op,journal", [("write", "1"), ("journal", "1"), ("write", "0"),
                                        ("fsync", "0"), ("rename", "0"), ("dirsync", "0")])
def test_tern_fault_never_250(ternd_factory, monkeypatch, op, journal):
    # local mail goes the direct path: through its journal ("1"; here for both sizes,
    # by default up to 32 KiB), or syncfs + rename + directory fsync ("0", as bigger
    # messages do)
    monkeypatch.setenv("TERN_FAULT", op)
    monkeypatch.setenv("TERN_DIRECT_JOURNAL", journal)
    monkeypatch.setenv("TERN_JOURNAL_MSG_MAX", str(1 << 20))
    srv = ternd_factory()
    for size in (10, 200 * 1024):  # buffered, and big enough to hit write() in DATA
        r = send(srv, "fault-%s" % op, b"x" * 70 + b"\r\n" * 1 + (b"y" * 998 + b"\r\n") * (size // 1000))
        assert r.code in (451, 452), "%s: %r" % (op, r)
    time.sleep(0.2)
    assert spool_files(srv) == [], "orphans after %s failure" % op
    still_serves(srv)
    assert "event=commit-failed" in srv.log() or "event=spool-error" in srv.log()
    assert all_stored(srv.data_dir) == []
    monkeypatch.delenv("TERN_FAULT")
    srv.restart()
    assert send(srv, "after").code == 250
    srv.wait_mail("alice@example.com", 1)


# ---------------------------------------------------------------------------
# LD_PRELOAD shim


@pytest.fixture
def shim(tmp_path, monkeypatch):
    """Build the shim and put ternd under it; returns a function setting the mode
    (None switches faults off)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler for the fault shim")
    so = tmp_path / "faultshim.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(so), str(SHIM_SRC), "-ldl"],
                   check=True)
    ctl = tmp_path / "faultshim.ctl"
    monkeypatch.setenv("LD_PRELOAD", str(so))
    monkeypatch.setenv("FAULTSHIM_CTL", str(ctl))
    asan = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (asan + ":" if asan else "") + "verify_asan_link_order=0")

    def set_mode(mode):
        if mode is None:
            if ctl.exists():
                ctl.unlink()
        else:
            ctl.write_text(mode + "\n")
    return set_mode


BIG = (b"z" * 998 + b"\r\n") * 300  # 300 KB: written to the file during DATA


def test_shim_enospc_452_then_resumes(ternd_factory, shim):
    srv = ternd_factory()
    shim("enospc")
    for body in (b"small\r\n", BIG):
        r = send(srv, "enospc", body)
        assert r.code == 452 and r.lines[0].startswith("4.3.1"), r
    time.sleep(0.2)
    assert spool_files(srv) == []
    still_serves(srv)
    shim(None)
    assert send(srv, "resumed", BIG).code == 250
    st = read_stored(srv.wait_mail("alice@example.com", 1)[0])
    assert st.message == b"Subject: resumed\n\n" + BIG.replace(b"\r\n", b"\n")


def test_shim_short_writes_complete(ternd_factory, shim):
    srv = ternd_factory()
    shim("short")
    body = b"".join(b"line %06d %s\r\n" % (i, b"q" * (i % 90)) for i in range(3000))
    assert send(srv, "short", body).code == 250
    shim(None)
    st = read_stored(srv.wait_mail("alice@example.com", 1)[0])
    assert st.message == b"Subject: short\n\n" + body.replace(b"\r\n", b"\n")


def test_shim_fsync_eio_451(ternd_factory, shim):
    srv = ternd_factory()
    shim("eio")
    r = send(srv, "eio")
    assert r.code == 451, r
    time.sleep(0.2)
    assert spool_files(srv) == []
    still_serves(srv)
    shim(None)
    assert send(srv, "after-eio").code == 250
    srv.wait_mail("alice@example.com", 1)


def test_shim_aio_refused_falls_back_once(ternd_factory, shim):
    """io_submit refused (a kernel whose AIO lacks RWF_DSYNC): ternd says so once,
    writes the journal synchronously from then on, and mail still arrives whole."""
    shim("nosubmit")
    srv = ternd_factory()
    m = re.search(r"event=journal-open file=\S+ io=(\S+)", srv.log())
    assert m, srv.log()
    if m.group(1) != "direct-aio":
        pytest.skip("the journal does not use AIO on this filesystem: io=" + m.group(1))
    for i in range(3):
        assert send(srv, "nosubmit %d" % i).code == 250
    msgs = srv.wait_mail("alice@example.com", 3)
    assert sorted(read_stored(m).message for m in msgs) == [
        b"Subject: nosubmit %d\n\nbody\n" % i for i in range(3)]
    assert srv.log().count("event=journal-aio-unsupported") == 1, srv.log()


# ---------------------------------------------------------------------------
# a real full disk


def test_full_disk_tmpfs(ternd_factory, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount tmpfs: %s" % r.stderr.strip())
    srv = None
    try:
        srv = ternd_factory(data_dir=mnt / "var")
        assert send(srv, "fits").code == 250
        srv.wait_mail("alice@example.com", 1)
        filler = mnt / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        for body in (b"small\r\n", BIG):
            r = send(srv, "full", body)
            assert r.code == 452 and r.lines[0].startswith("4.3.1"), r
        time.sleep(0.2)
        assert spool_files(srv) == []
        still_serves(srv)
        filler.unlink()
        assert send(srv, "space again", BIG).code == 250
        srv.wait_mail("alice@example.com", 2)
        srv.stop()
    finally:
        if srv is not None and srv.proc is not None:
            srv._kill()  # a failed assertion above: do not leave it running
            srv.proc = None
        subprocess.run(["umount", str(mnt)], check=False)


# ---------------------------------------------------------------------------
# corrupted queue files at start-up


def test_corrupt_queue_quarantined(ternd_factory):
    srv = ternd_factory(start=False)
    # one good message, queued but not delivered (mail/ is a file for now)
    (srv.data_dir / "mail").write_text("x")
    srv.start()
    assert send(srv, "good").code == 250
    assert send(srv, "to-truncate").code == 250
    srv.stop()
    q = srv.data_dir / "spool" / "queue"
    good, victim = sorted(q.iterdir())
    raw = victim.read_bytes()
    victim.write_bytes(raw[:-5])  # torn: size record and length disagree
    bad = {
        "0000000000000000000001": b"not a queue file\n",
        "0000000000000000000002": b"",
        "0000000000000000000003": raw.replace(b"from s@example.net", b"from s%ZZ@example.net"),
        "0000000000000000000004": b"tern-queue 1\nqid 0000000000000000000004\nsize 0000000000000000\n",
        "0000000000000000000005": (b"tern-queue 1\nqid 0000000000000000000005\nsize "
                                   b"0000000000000005\nenvelope-end\nhello"),  # no rcpt
    }
    for name, data in bad.items():
        (q / name).write_bytes(data)
    (srv.data_dir / "mail").unlink()
    srv.start()
    srv.wait_mail("alice@example.com", 1)
    corrupt = srv.data_dir / "spool" / "corrupt"
    wait_until(lambda: corrupt.is_dir() and len(list(corrupt.iterdir())) == 6, timeout=5,
               what="6 quarantined files")
    assert sorted(p.name for p in corrupt.iterdir()) == sorted(list(bad) + [victim.name])
    assert srv.log().count("event=quarantined") == 6
    time.sleep(0.5)
    stored = all_stored(srv.data_dir)
    assert len(stored) == 1 and read_stored(stored[0]).message.startswith(b"Subject: good")
    still_serves(srv)
    # quarantined files stay put across restarts and are never delivered
    srv.restart()
    time.sleep(0.5)
    assert len(all_stored(srv.data_dir)) == 1
    assert len(list(corrupt.iterdir())) == 6


# ---------------------------------------------------------------------------
# kill -9 under load, repeatedly


def test_kill9_loop(ternd):
    rounds = int(os.environ.get("TERN_STRESS_KILLS", "3"))
    acked = {}
    lock = threading.Lock()
    rng = random.Random(1234)
    for rnd in range(rounds):
        stop = threading.Event()

        def client(n):
            i = 0
            while not stop.is_set():
                mid = "k%d-%d-%d" % (rnd, n, i)
                i += 1
                body = "".join("%s line %d\r\n" % (mid, j) for j in range(50 + (i % 7) * 200))
                raw = ("Subject: %s\r\n\r\n%sEND %s\r\n" % (mid, body, mid)).encode()
                try:
                    with smtplib.SMTP(ternd.host, ternd.port, timeout=5) as s:
                        s.sendmail("c@example.net", ["box%d@example.com" % n], raw)
                except (OSError, smtplib.SMTPException):
                    continue
                with lock:
                    acked[mid] = raw

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3 + rng.random() * 1.2)  # a random moment under load
        ternd.kill9()
        stop.set()
        for t in threads:
            t.join(10)
        ternd.restart()
    promised = dict(acked)
    assert len(promised) > 0

    def check():
        found = {}
        for p in all_stored(ternd.data_dir):
            m = read_stored(p).message
            subj = m.split(b"\n", 1)[0][len(b"Subject: "):].decode()
            found[subj] = m
        return found

    try:
        found = wait_until(lambda: (lambda f: f if set(promised) <= set(f) else None)(check()),
                           timeout=60, interval=0.3, what="all acknowledged messages")
    except AssertionError:
        lost = sorted(set(promised) - set(check()))
        raise AssertionError("%d of %d acknowledged messages lost after %d kills: %s"
                             % (len(lost), len(promised), rounds, lost[:10])) from None
    # no partial message was ever delivered (acknowledged or not)
    for subj, m in check().items():
        assert m.endswith(b"END " + subj.encode() + b"\n"), "partial message %s" % subj
        if subj in promised:
            assert m == promised[subj].replace(b"\r\n", b"\n")
