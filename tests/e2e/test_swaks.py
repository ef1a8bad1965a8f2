"""swaks, a real SMTP client with its own idea of the protocol, against ternd."""

import subprocess

from conftest import need_tool, read_stored


def swaks(srv, *extra):
    exe = need_tool("swaks")
    argv = [exe, "--server", srv.host, "--port", str(srv.port),
            "--from", "swaks@example.net", "--helo", "client.example", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def check_delivered(srv, rcpt, subject, body):
    files = srv.wait_mail(rcpt, 1)
    assert len(files) == 1
    st = read_stored(files[0])
    assert st.return_path == "<swaks@example.net>"
    assert st.delivered_to == rcpt
    assert ("Subject: %s\n" % subject).encode() in st.message
    assert body.encode() in st.message


def test_swaks_plain(ternd):
    p = swaks(ternd, "--to", "alice@example.com", "--header", "Subject: from swaks",
              "--body", "plain swaks body")
    assert p.returncode == 0, p.stdout + p.stderr
    check_delivered(ternd, "alice@example.com", "from swaks", "plain swaks body")


def test_swaks_pipeline(ternd):
    p = swaks(ternd, "--pipeline", "--to", "alice@example.com,bob@example.org",
              "--header", "Subject: pipelined", "--body", "pipelined swaks body")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "PIPELINING" in p.stdout
    for rcpt in ("alice@example.com", "bob@example.org"):
        check_delivered(ternd, rcpt, "pipelined", "pipelined swaks body")
