#!/usr/bin/env python3
"""Power-loss test (issue 3; `make stress`, needs root and loop devices).

Puts ternd's data directory on a loop-mounted ext4 image with a long journal commit
interval (commit=60, so nothing reaches the image unless fsync forces it), sends
mail from several clients, then freezes ternd (SIGSTOP) and copies the image while
it is still mounted: the copy is what a disk would hold if the power failed at that
instant. The copy is fsck'ed and mounted, ternd is started on it once (recovery:
the journal replays into the Maildirs) and stopped, and every message that got a 250
must be in it (in spool/queue/ or a Maildir), complete. A missing file fsync or directory
fsync shows up as acknowledged messages missing from the copy.

Usage: tests/stress/power_loss.py [BUILD_DIR] [SECONDS]   (defaults: build 10)
Exit 0 and a line "power-loss: N acknowledged, N found, 0 missing" on success."""

import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
build = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "build"
if not build.is_absolute():
    build = REPO / build
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ternd(build, data, logpath, timeout):
    """ternd on a free loopback port with its data under `data`; returns (proc, port)
    once it accepts connections, or (None, port) if it exits or stays deaf."""
    port = free_port()
    with open(logpath, "wb") as log:
        proc = subprocess.Popen([str(build / "ternd"), "--listen", "127.0.0.1:%d" % port,
                                 "--data", str(data)], stdout=log, stderr=log)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                proc.wait()
                return None, port
            time.sleep(0.05)


def main():
    if os.geteuid() != 0:
        print("power-loss: SKIP (needs root for mount)")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="tern-powerloss-"))
    img, copy = tmp / "disk.img", tmp / "copy.img"
    mnt, mnt2 = tmp / "mnt", tmp / "mnt2"
    mnt.mkdir()
    mnt2.mkdir()
    proc = None
    mounted = []
    try:
        sh("truncate", "-s", "512M", str(img))
        sh("mkfs.ext4", "-q", "-F", str(img))
        r = sh("mount", "-o", "loop,commit=60", str(img), str(mnt), check=False)
        if r.returncode != 0:
            print("power-loss: SKIP (cannot loop-mount: %s)" % r.stderr.strip())
            return 0
        mounted.append(mnt)
        proc, port = start_ternd(build, mnt / "var", tmp / "ternd.log", 10)
        if proc is None:
            print((tmp / "ternd.log").read_text())
            print("power-loss: FAIL (ternd did not start)")
            return 1
        acked = {}
        lock = threading.Lock()
        stop = threading.Event()

        def client(n):
            i = 0
            while not stop.is_set():
                mid = "pl-%d-%d" % (n, i)
                i += 1
                # mostly small (the journal path); every 7th ~60 KB (the syncfs path)
                lines = 3000 if i % 7 == 0 else 20 + (i % 5) * 100
                body = "".join("%s line %d\r\n" % (mid, j) for j in range(lines))
                raw = ("Subject: %s\r\n\r\n%sEND %s\r\n" % (mid, body, mid)).encode()
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                        s.sendmail("c@example.net", ["box%d@example.com" % (i % 3)], raw)
                except (OSError, smtplib.SMTPException):
                    continue
                with lock:
                    acked[mid] = raw

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(8)]
        for t in threads:
            t.start()
        time.sleep(secs)
        # the power fails: freeze ternd mid-load, snapshot the disk as it is now
        proc.send_signal(signal.SIGSTOP)
        with lock:
            promised = dict(acked)
        shutil.copyfile(img, copy)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = None
        stop.set()
        for t in threads:
            t.join(15)
        r = sh("e2fsck", "-fy", str(copy), check=False)
        fsck = "e2fsck exit %d" % r.returncode  # 0 clean, 1 corrected (journal replay)
        if r.returncode > 1:
            print(r.stdout, r.stderr)
            print("power-loss: FAIL (%s)" % fsck)
            return 1
        sh("mount", "-o", "loop", str(copy), str(mnt2))
        mounted.append(mnt2)
        if os.environ.get("POWERLOSS_DEBUG"):
            jr = (mnt2 / "var" / "spool" / "direct.journal").read_bytes()
            with lock:
                last = sorted(promised, key=lambda m: int(m.split("-")[2]))[-40:]
            print("journal %d bytes; in it: %s" % (len(jr), [m for m in last if ("Subject: " + m + "\n").encode() in jr]))
            print("not in it: %s" % [m for m in last if ("Subject: " + m + "\n").encode() not in jr])
        # the machine comes back: ternd starts on the copy and recovers (replays its
        # journal into the Maildirs, requeues what the spool holds), then stops
        rec, _ = start_ternd(build, mnt2 / "var", tmp / "ternd-recover.log", 30)
        if rec is None:
            print((tmp / "ternd-recover.log").read_text())
            print("power-loss: FAIL (ternd did not start on the copy)")
            return 1
        rec.send_signal(signal.SIGTERM)
        rec.wait(60)
        rlog = (tmp / "ternd-recover.log").read_text()
        replayed = rlog.count("replayed=yes")
        if os.environ.get("POWERLOSS_DEBUG"):
            print("\n".join(x for x in rlog.splitlines() if "journal" in x or "error" in x or "warn" in x))
        found, partial = {}, []
        var = mnt2 / "var"
        files = list((var / "spool" / "queue").glob("*")) + list(var.glob("mail/*/*/Maildir/new/*"))
        for p in files:
            data = p.read_bytes().replace(b"\r\n", b"\n")
            k = data.find(b"Subject: pl-")
            if k < 0:
                continue
            mid = data[k + 9:data.index(b"\n", k)].decode()
            found[mid] = data
            if not data.endswith(("END %s\n" % mid).encode()):
                partial.append(mid)
        missing = sorted(set(promised) - set(found))
        bad = [m for m in promised if m in found and not found[m].endswith(
            promised[m].replace(b"\r\n", b"\n"))]
        print("power-loss: %d acknowledged, %d found (%d files in the copy, %d copies "
              "replayed from the journal), %d missing, %d incomplete; %s" %
              (len(promised), len(set(promised) & set(found)), len(files), replayed,
               len(missing), len(bad) + len(partial), fsck))
        if missing or bad or partial:
            print("missing:", missing[:20], "bad:", bad[:10], "partial:", partial[:10])
            return 1
        return 0 if promised else 1
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        for m in reversed(mounted):
            subprocess.run(["umount", str(m)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
