"""`tern send` against Postfix's smtp-sink, a server no one here wrote: the dialogue
completes, the envelope is what we asked for, and the message it dumps parses back
with Python's email package (attachment byte for byte, UTF-8 subject)."""

import email
import email.policy
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import TERN, free_port, wait_until

SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


@pytest.fixture
def sink(tmp_path):
    if not os.path.exists(SINK):
        pytest.skip("smtp-sink (Debian postfix) not installed")
    # smtp-sink drops to nobody when started as root, and pytest's tmp_path sits under
    # a root-only directory: the dump directory lives directly under /tmp instead.
    dump = Path(tempfile.mkdtemp(prefix="tern-sink-"))
    os.chmod(dump, 0o777)
    port = free_port()
    argv = [SINK, "-d", str(dump) + "/%M."]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]
    argv += ["127.0.0.1:%d" % port, "10"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def up():
            import socket
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_until(up, timeout=5, what="smtp-sink listening")
        yield port, dump
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        shutil.rmtree(dump, ignore_errors=True)


def test_send_to_smtp_sink(sink, tmp_path):
    port, dump = sink
    blob = os.urandom(5000)
    (tmp_path / "a.bin").write_bytes(blob)
    r = subprocess.run([str(TERN), "send", "--server", "127.0.0.1:%d" % port, "--tls", "none",
                        "--from", "me@example.org", "--to", "you@example.net",
                        "--bcc", "hidden@example.net", "--subject", "caf\u00e9 \u2615",
                        "--body", "h\u00e9llo\n", "--attach", str(tmp_path / "a.bin"), "-v"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"S: 250" in r.stdout + r.stderr
    wait_until(lambda: len(os.listdir(dump)) == 1, what="smtp-sink dump")
    time.sleep(0.2)  # the dump file is written as the message arrives
    raw = (dump / os.listdir(dump)[0]).read_bytes()
    head, _, msg = raw.partition(b"Received: ")
    assert b"X-Mail-Args: <me@example.org>" in head
    assert b"X-Rcpt-Args: <you@example.net>" in head and b"<hidden@example.net>" in head
    m = email.message_from_bytes(b"Received: " + msg, policy=email.policy.default)
    assert m["Subject"] == "caf\u00e9 \u2615"
    assert "Bcc" not in m
    (att,) = list(m.iter_attachments())
    assert att.get_content() == blob
    assert m.get_body(preferencelist=("plain",)).get_content() == "h\u00e9llo\n"
