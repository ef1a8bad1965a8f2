"""A crash in the middle of making a bounce (issue 6; docs/QUEUE.md "Relay" step 5):
ternd is killed with SIGKILL at each point between "the failure is recorded in the
state" and "the bounce is handed to delivery", restarted, and must deliver exactly
one bounce and leave an empty queue. The kill points are ternd's own test hook
TERN_KILL_AT (src/deliver/relay.c):

  bounce-owed      dsn-seq is durable, the DSN <qid>D1 does not exist yet
  bounce-written   <qid>D1 is in queue/ (held), the original has not recorded it
  bounce-recorded  the original's .done records the failed recipient, D1 still held

The remote is a scripted server on 127.0.0.2 that refuses the recipient with 550,
reached through the transport map (no DNS). Before the fix that came with this test,
a kill at bounce-recorded lost the bounce: after the restart the original, all its
recipients done, was removed and D1 stayed held for ever."""

import email
import email.policy
import signal
import time

import pytest

from conftest import free_port, maildir_files, wait_until
from test_relay import MSG, Receiver, serve, submit  # noqa: F401

CONF = """
hostname = sender.test
local_domains = sender.test
aliases = aliases
transport = remote.test 127.0.0.2:{rport}
retry_first = 1s
retry_max = 1s
relay_timeout = 5s
"""


def queue_names(srv):
    q = srv.data_dir / "spool" / "queue"
    return sorted(p.name for p in q.iterdir()) if q.is_dir() else []


def killed_sender(ternd_factory, monkeypatch, point, rcpt_reply, extra=""):
    """The remote (refusing RCPT with rcpt_reply) and a ternd with TERN_KILL_AT=point
    that has just accepted MSG for bob@sender.test (an alias of bob@remote.test)."""
    rport = free_port("127.0.0.2")
    rcv = Receiver("127.0.0.2", rport, lambda r, c, n: serve(r, c, rcpt_reply=rcpt_reply))
    port = free_port()
    while port == rport:
        port = free_port()
    try:
        monkeypatch.setenv("TERN_KILL_AT", point)
        send = ternd_factory(config=CONF.replace("{rport}", str(rport)) + extra, start=False,
                             port=port)
        (send.tmp / "aliases").write_text("bob: bob@remote.test\n")
        send.start()
        submit(send, ["bob@sender.test"], MSG)
    except BaseException:
        rcv.close()
        raise
    return rcv, send


@pytest.mark.parametrize("point", ["bounce-owed", "bounce-written", "bounce-recorded"])
def test_kill_during_bounce_gives_exactly_one(ternd_factory, monkeypatch, point):
    rcv, send = killed_sender(ternd_factory, monkeypatch, point, b"550 5.1.1 no such user here")
    try:
        # ternd kills itself at the point
        rc = send.proc.wait(20)
        assert rc == -signal.SIGKILL, "exit %r, not SIGKILL at %s:\n%s" % (rc, point, send.log())
        names = queue_names(send)
        qid = min((n for n in names if n.isalnum()), key=len)  # D1 is <qid>D1
        dsn = qid + "D1"
        if point == "bounce-owed":
            assert dsn not in names, names
        else:
            assert dsn in names and dsn + ".hold" in names, names
        assert maildir_files(send.mailbox("alice@sender.test")) == []

        monkeypatch.delenv("TERN_KILL_AT")
        send.restart()
        files = send.wait_mail("alice@sender.test", timeout=20)
        wait_until(lambda: queue_names(send) == [], timeout=15,
                   what="empty queue (left: %s)" % queue_names(send))
        time.sleep(1.5)  # a second bounce would come within a retry period
        files = maildir_files(send.mailbox("alice@sender.test"))
        assert len(files) == 1, [f.name for f in files]
        msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
        assert msg.get_content_type() == "multipart/report"
        assert "bob@remote.test" in files[0].read_text(errors="replace")
        assert queue_names(send) == []
        if point == "bounce-recorded":
            # the original had recorded D1: only its release was left to do
            assert "event=bounce-released dsn=%s" % dsn in send.log()
        # the refused message itself was never relayed
        assert rcv.messages == []
    finally:
        rcv.close()


LOCAL_CONF = """
hostname = sender.test
local_domains = sender.test
resolver = 127.0.0.1:9
retry_first = 1s
retry_max = 1s
give_up = 3s
"""


@pytest.mark.parametrize("point", ["bounce-owed", "bounce-written", "bounce-recorded"])
def test_kill_during_local_give_up_bounce_gives_exactly_one(ternd_factory, monkeypatch, point):
    """The same for a local recipient that failed until give_up (its Maildir is a
    regular file): local.c marks it failed, relay.c makes the bounce. After the
    restart the failed recipient must not be tried again (or given up again, which
    would make a second bounce under a new dsn-seq): it is relay's to finish."""
    monkeypatch.setenv("TERN_KILL_AT", point)
    t = ternd_factory(config=LOCAL_CONF, start=False)
    box = t.mailbox("carol@sender.test")
    box.parent.mkdir(parents=True, exist_ok=True)
    box.write_bytes(b"not a directory\n")
    t.start()
    submit(t, ["carol@sender.test"], MSG)

    rc = t.proc.wait(30)
    assert rc == -signal.SIGKILL, "exit %r, not SIGKILL at %s:\n%s" % (rc, point, t.log())
    assert maildir_files(t.mailbox("alice@sender.test")) == []

    monkeypatch.delenv("TERN_KILL_AT")
    t.restart()
    t.wait_mail("alice@sender.test", timeout=20)
    wait_until(lambda: queue_names(t) == [], timeout=15,
               what="empty queue (left: %s)" % queue_names(t))
    time.sleep(1.5)
    files = maildir_files(t.mailbox("alice@sender.test"))
    assert len(files) == 1, [f.name for f in files]
    raw = files[0].read_bytes()
    assert b"Action: failed" in raw and b"carol@sender.test" in raw
    assert box.read_bytes() == b"not a directory\n"


def test_kill_after_delay_warning_written_releases_it_when_final(ternd_factory, monkeypatch):
    """A crash between writing the delay warning <qid>W (held) and releasing it: the
    original has recorded `warned 1`, so it never makes a second one; when it is
    final (here: given up after 4 s of 451s) the warning left held is released and
    delivered, then the bounce: the sender gets one of each and the queue empties.
    Before this test <qid>W stayed held in the queue for ever."""
    rcv, send = killed_sender(ternd_factory, monkeypatch, "warning-written",
                              b"451 4.3.0 busy, later", "delay_warning = 1s\ngive_up = 4s\n")
    try:
        rc = send.proc.wait(20)
        assert rc == -signal.SIGKILL, "exit %r, not SIGKILL:\n%s" % (rc, send.log())
        names = queue_names(send)
        qid = min((n for n in names if n.isalnum()), key=len)
        assert qid + "W" in names and qid + "W.hold" in names, names
        assert maildir_files(send.mailbox("alice@sender.test")) == []

        monkeypatch.delenv("TERN_KILL_AT")
        send.restart()
        wait_until(lambda: queue_names(send) == [], timeout=30,
                   what="empty queue (left: %s)" % queue_names(send))
        wait_until(lambda: len(maildir_files(send.mailbox("alice@sender.test"))) >= 2,
                   timeout=10, what="warning and bounce delivered")
        time.sleep(1.5)  # a second warning would come within a retry period
        raws = [f.read_bytes() for f in maildir_files(send.mailbox("alice@sender.test"))]
        assert len(raws) == 2, raws
        assert sum(b"Action: delayed" in r for r in raws) == 1
        assert sum(b"Action: failed" in r for r in raws) == 1
        assert "event=bounce-released dsn=%sW" % qid in send.log()
        assert "event=delay-warning" not in send.log()  # not made a second time
        assert rcv.messages == []
    finally:
        rcv.close()
