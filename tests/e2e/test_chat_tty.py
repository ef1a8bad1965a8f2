"""`tern chat` on a real terminal (tmux), as a person learning SMTP would use it:
typed commands, replies with explanations, DATA mode ended by a lone dot."""

import shutil
import subprocess
import time
import uuid

import pytest

from conftest import TERN, wait_until


@pytest.fixture
def tmux():
    if not shutil.which("tmux"):
        pytest.skip("tmux not installed")
    name = "tern-chat-" + uuid.uuid4().hex[:8]
    sock = "/tmp/%s.sock" % name
    yield ["tmux", "-S", sock], name
    subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True)


def test_chat_on_a_terminal(ternd, tmux):
    tm, name = tmux
    subprocess.run(tm + ["new-session", "-d", "-s", name, "-x", "160", "-y", "50",
                         "%s chat %s:%d" % (TERN, ternd.host, ternd.port)], check=True)
    # Keep the pane (and its text) after tern exits on QUIT.
    subprocess.run(tm + ["set-option", "-t", name, "remain-on-exit", "on"], check=True)

    def screen():
        return subprocess.run(tm + ["capture-pane", "-p", "-t", name, "-S", "-200"],
                              capture_output=True, text=True).stdout

    def type_line(text):
        subprocess.run(tm + ["send-keys", "-t", name, "-l", text], check=True)
        subprocess.run(tm + ["send-keys", "-t", name, "Enter"], check=True)

    wait_until(lambda: "220 " in screen(), what="greeting on screen")
    for line in ["EHLO learner.test", "MAIL FROM:<me@example.org>",
                 "RCPT TO:<you@example.com>", "DATA"]:
        type_line(line)
        time.sleep(0.1)
    wait_until(lambda: "354" in screen(), what="354 on screen")
    for line in ["Subject: typed by hand", "", ".hidden dot", "."]:
        type_line(line)
    wait_until(lambda: "queued as" in screen(), what="250 queued on screen")
    type_line("QUIT")
    wait_until(lambda: "221" in screen(), what="221 on screen")
    s = screen()
    assert "-> OK: sender accepted" in s
    (path,) = ternd.wait_mail("you@example.com")
    assert open(path, "rb").read().endswith(b"Subject: typed by hand\n\n.hidden dot\n")
