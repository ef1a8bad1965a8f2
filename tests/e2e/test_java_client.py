"""The tutorial's Java client (tests/e2e/java/SMTPClient.java), compiled and run for
real against the built-in default: bare LF line ends, no reply ever read, a bogus
"SUBJECT:" command, an immediate close. Every run must leave one stored message."""

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import wait_until


SRC = Path(__file__).parent / "java" / "SMTPClient.java"


@pytest.fixture(scope="module")
def java_client(tmp_path_factory):
    if not shutil.which("javac") or not shutil.which("java"):
        pytest.skip("no Java compiler on this machine")
    out = tmp_path_factory.mktemp("java")
    subprocess.run(["javac", "-d", str(out), str(SRC)], check=True, timeout=120)
    return out


def test_naive_java_client_is_served(ternd, java_client):
    runs = 3
    for _ in range(runs):
        r = subprocess.run(["java", "-cp", str(java_client), "SMTPClient", ternd.host,
                            str(ternd.port)], capture_output=True, timeout=60)
        assert r.returncode == 0 and b"Exception" not in r.stderr, r.stderr
    paths = ternd.wait_mail("recipient@example.com", n=runs)
    assert len(paths) == runs
    for p in paths:
        raw = open(p, "rb").read()
        assert b"Return-Path: <sender@example.com>" in raw
        assert raw.endswith(b"Subject: Hello\nContent-Type: text/plain\n\nThis is a test email.\n")
    # A copy is visible in new/ a moment before the loop logs its acceptance (direct
    # delivery renames it there, then the 250 and the log line follow).
    wait_until(lambda: ternd.log().count("event=accepted") == runs, timeout=5,
               what="%d accepted log lines" % runs)
