"""Direct delivery (src/deliver/direct.c): a message for local mailboxes only is
written straight into the Maildirs and never passes through the queue. The 250 comes
once its record is durable in the journal (docs/QUEUE.md "The journal"); the copies
appear in new/ right after. An injected storage fault before the 250 gives a 4xx and
leaves nothing in any Maildir; a fault after it (placing the copies) loses nothing:
the journal puts the message there after a restart, once."""

import ctypes
import json
import mmap
import os
import re
import smtplib
import subprocess

import pytest

from conftest import (maildir_files, maildir_new, tern_cli, wait_for_maildir_files,
                      wait_until)


def test_local_message_is_in_maildirs_at_250(ternd):
    with smtplib.SMTP(ternd.host, ternd.port, timeout=10) as s:
        s.sendmail("a@example.net", ["Alice@Example.com", "bob@example.com"],
                   b"Subject: direct\r\n\r\nbody\r\n")
        # the 250 is the promise that the message is durable; the copies follow
        for who in ("alice@example.com", "bob@example.com"):
            files = wait_for_maildir_files(maildir_new(ternd.data_dir, who), 1)
            assert len(files) == 1
            raw = files[0].read_bytes()
            assert raw.startswith(b"Return-Path: <a@example.net>\nDelivered-To: " +
                                  who.encode() + b"\nReceived: from ")
            assert raw.endswith(b"\n\nbody\n") and b"\r" not in raw
            assert files[0].name.endswith(",S=%d" % len(raw))
    queue = ternd.data_dir / "spool" / "queue"
    assert not queue.exists() or not os.listdir(queue)
    assert "direct=yes" in ternd.log()


@pytest.mark.parametrize("op,journal", [("write", "1"), ("journal", "1"), ("write", "0"),
                                        ("fsync", "0"), ("rename", "0"), ("dirsync", "0")])
def test_storage_fault_gives_4xx_and_leaves_nothing(ternd_factory, monkeypatch, op, journal):
    # journal "0": the syncfs path (messages too big for the journal take it)
    monkeypatch.setenv("TERN_FAULT", op)
    monkeypatch.setenv("TERN_DIRECT_JOURNAL", journal)
    t = ternd_factory()
    with smtplib.SMTP(t.host, t.port, timeout=10) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("a@example.net", ["alice@example.com"], b"Subject: x\r\n\r\nbody\r\n")
        assert 400 <= e.value.smtp_code < 500
    box = t.data_dir / "mail" / "example.com" / "alice" / "Maildir"
    for sub in ("new", "tmp"):
        d = box / sub
        assert not d.exists() or not os.listdir(d), sub


def _send(t, n, tag):
    with smtplib.SMTP(t.host, t.port, timeout=10) as s:
        for i in range(n):
            s.sendmail("a@example.net", ["alice@example.com", "bob@example.com"],
                       b"Subject: %s %d\r\n\r\n.leading dot\r\nbody %d\r\n" %
                       (tag.encode(), i, i))


def _bodies(t, who):
    return sorted(f.read_bytes().split(b"\n\n", 1)[1]
                  for f in maildir_files(maildir_new(t.data_dir, who)))


def _end_and_restart_without_fault(t, monkeypatch, how):
    """Stop ternd (SIGTERM or kill -9), start it again without TERN_FAULT, and check
    that each recipient then has the 3 messages _send gave, each once."""
    if how == "kill9":
        t.kill9()
    else:
        t.stop()
    monkeypatch.delenv("TERN_FAULT")
    t.restart()
    want = sorted(b".leading dot\nbody %d\n" % i for i in range(3))
    for who in ("alice@example.com", "bob@example.com"):
        wait_for_maildir_files(maildir_new(t.data_dir, who), 3)
        assert _bodies(t, who) == want


def _second_restart_replays_nothing(t):
    """Another restart and one more message: 4 copies each, no replay."""
    t.stop()
    t.restart()
    _send(t, 1, "after")
    for who in ("alice@example.com", "bob@example.com"):
        wait_for_maildir_files(maildir_new(t.data_dir, who), 4)
    t.stop()
    for who in ("alice@example.com", "bob@example.com"):
        assert len(maildir_files(maildir_new(t.data_dir, who))) == 4
    assert "replayed=yes" not in t.log()


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_acknowledged_but_not_placed_is_placed_after_restart_once(ternd_factory, monkeypatch,
                                                                  how):
    """Placing the copies fails after the 250 (TERN_FAULT=place): nothing is lost.
    After a restart without the fault the journal replays them, each exactly once."""
    monkeypatch.setenv("TERN_FAULT", "place")
    t = ternd_factory()
    _send(t, 3, how)
    wait_until(lambda: t.log().count("event=place-failed") >= 3, what="place-failed lines")
    for who in ("alice@example.com", "bob@example.com"):
        assert maildir_files(maildir_new(t.data_dir, who)) == []
    _end_and_restart_without_fault(t, monkeypatch, how)
    log = t.log()
    assert "replayed=yes" in log
    # ternd listens only once the replay is done (a client is refused meanwhile,
    # instead of waiting in the backlog), and says started right after
    rec, lis, sta = (log.find(e) for e in ("event=journal-recover ", "event=listening ",
                                           "event=started "))
    assert 0 <= rec < lis < sta, log
    _second_restart_replays_nothing(t)


def test_tern_queue_lists_acknowledged_unplaced_mail(ternd_factory, monkeypatch):
    """Mail acknowledged through the journal but not yet in its Maildirs is in no
    queue file; `tern queue` still lists it (state "placing", the last error), says
    why show/delete do not apply, and flush retries it at once."""
    monkeypatch.setenv("TERN_FAULT", "place")
    monkeypatch.setenv("TERN_RETRY_MS", "60000")  # no timed retry during the test
    t = ternd_factory()
    d = str(t.data_dir)
    _send(t, 2, "q")
    wait_until(lambda: t.log().count("direct=yes error=") >= 2, what="place-failed lines")
    qids = re.findall(r"qid=(\w+) event=place-failed", t.log())
    assert len(qids) == 2
    r = tern_cli("queue", "-d", d, "list", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert sorted(e["id"] for e in j) == sorted(qids)
    for e in j:
        assert e["state"] == "placing" and e["sender"] == "a@example.net"
        assert e["last_error"] == "Input/output error"
        assert [x["address"] for x in e["recipients"]] == ["alice@example.com",
                                                           "bob@example.com"]
        assert all(x["attempts"] >= 1 and not x["done"] for x in e["recipients"])
        assert e["size"] > len(b".leading dot\nbody 0\n")
    text = tern_cli("queue", "-d", d, "list").stdout
    for q in qids:
        line = next(x for x in text.splitlines() if x.startswith(q))
        assert "<a@example.net>" in line and "<bob@example.com>" in line
        assert "placing  Input/output error" in line
    for cmd in ("show", "hold", "delete"):
        r = tern_cli("queue", "-d", d, cmd, qids[0])
        assert r.returncode != 0 and "only flush applies" in r.stderr, (cmd, r)
    r = tern_cli("queue", "-d", d, "show", "0NOSUCHID")
    assert r.returncode != 0 and "no message 0NOSUCHID in the queue" in r.stderr
    # timed retries are a minute apart here: flush brings one at once
    assert "action=retry-later" not in t.log()
    assert tern_cli("queue", "-d", d, "flush").returncode == 0
    wait_until(lambda: t.log().count("action=retry-later") == 2, what="the flushed retries")
    j = json.loads(tern_cli("queue", "-d", d, "list", "--json").stdout)
    assert [x["attempts"] for e in j for x in e["recipients"]] == [2, 2, 2, 2]
    # placed after a restart without the fault: nothing is listed any more
    t.stop()
    monkeypatch.delenv("TERN_FAULT")
    t.start()
    for who in ("alice@example.com", "bob@example.com"):
        wait_for_maildir_files(maildir_new(t.data_dir, who), 2)
    assert json.loads(tern_cli("queue", "-d", d, "list", "--json").stdout) == []


def test_tern_queue_placing_sender_with_quoted_angle(ternd_factory, monkeypatch):
    """The sender `tern queue` shows for mail waiting to be placed is read back from
    the copy's Return-Path line: a quoted local part holding '>' stays whole."""
    monkeypatch.setenv("TERN_FAULT", "place")
    t = ternd_factory()
    with smtplib.SMTP(t.host, t.port, timeout=10) as s:
        s.sendmail('"a>b"@example.net', ["alice@example.com"], b"Subject: q\r\n\r\nx\r\n")
    wait_until(lambda: "direct=yes error=" in t.log(), what="place-failed line")
    j = json.loads(tern_cli("queue", "-d", str(t.data_dir), "list", "--json").stdout)
    assert [e["sender"] for e in j] == ['"a>b"@example.net']


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_unplaced_record_without_memory_waits_for_the_restart(ternd_factory, monkeypatch, how):
    """Placing the first message fails after its 250 and there is no memory to keep
    its record for a retry (TERN_FAULT=place-nomem): the journal keeps it, and retires
    nothing from it on, even at a clean stop. The restart replays it; the two after
    it, placed at once, are not placed a second time."""
    monkeypatch.setenv("TERN_FAULT", "place-nomem")
    t = ternd_factory()
    _send(t, 3, how)
    wait_until(lambda: "action=replay-at-restart" in t.log(), what="out-of-memory line")
    for who in ("alice@example.com", "bob@example.com"):
        wait_for_maildir_files(maildir_new(t.data_dir, who), 2)
        assert _bodies(t, who) == sorted(b".leading dot\nbody %d\n" % i for i in (1, 2))
    assert t.log().count("event=place-failed") == 2  # the message's line, the no-memory one
    _end_and_restart_without_fault(t, monkeypatch, how)
    assert t.log().count("replayed=yes") == 2  # one line per recipient, message 0 only
    _second_restart_replays_nothing(t)


@pytest.mark.parametrize("env,mode", [
    ({}, "direct-aio"),
    ({"TERN_JOURNAL_AIO": "0"}, "direct"),
    ({"TERN_JOURNAL_DIRECT": "0"}, "buffered"),
])
def test_each_journal_write_mode_delivers(ternd_factory, monkeypatch, env, mode):
    """The journal's three ways of writing (docs/QUEUE.md "How records reach the
    disk"): the one in use is logged at start, and mail sent through it arrives
    whole, once. On ext4 (O_DIRECT and Linux AIO there) the mode must be the one
    asked for; elsewhere ternd may fall back, and only delivery is checked."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    t = ternd_factory()
    m = re.search(r"event=journal-open file=\S+ io=(\S+)", t.log())
    assert m, t.log()
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(t.data_dir)], capture_output=True,
                        text=True).stdout.strip()
    if fs == "ext2/ext3":  # how stat(1) names ext4
        assert m.group(1) == mode
    _send(t, 5, mode)
    for who in ("alice@example.com", "bob@example.com"):
        wait_for_maildir_files(maildir_new(t.data_dir, who), 5)
        assert _bodies(t, who) == sorted(b".leading dot\nbody %d\n" % i for i in range(5))


def test_kill9_under_load_loses_nothing(ternd_factory):
    """Messages acknowledged while ternd is killed -9 mid-stream are all there after
    the restart (placed before the kill, or replayed from the journal), complete."""
    t = ternd_factory()
    import threading
    acked, stop = [], threading.Event()

    def sender(k):
        try:
            with smtplib.SMTP(t.host, t.port, timeout=10) as s:
                i = 0
                while not stop.is_set():
                    body = b"Subject: k%d-%d\r\n\r\n%s\r\n" % (k, i, b"x" * (i % 5000))
                    s.sendmail("a@example.net", ["alice@example.com"], body)
                    acked.append(b"k%d-%d" % (k, i))
                    i += 1
        except (smtplib.SMTPException, OSError):
            pass

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    wait_until(lambda: len(acked) >= 200, timeout=30, what="200 acknowledged messages")
    t.kill9()
    stop.set()
    for th in threads:
        th.join(15)
    t.restart()
    t.stop()  # SIGTERM: every copy placed and synced
    got = {}
    for f in maildir_files(maildir_new(t.data_dir, "alice@example.com")):
        raw = f.read_bytes()
        subj = raw.split(b"Subject: ", 1)[1].split(b"\n", 1)[0]
        got[subj] = raw
        assert f.name.endswith(",S=%d" % len(raw)), f.name
    missing = [a for a in acked if a not in got]
    assert not missing, "acknowledged but missing: %r" % missing[:10]
    for subj, raw in got.items():
        i = int(subj.split(b"-")[1])
        assert raw.endswith(b"\n\n" + b"x" * (i % 5000) + b"\n"), subj


def test_durability_relaxed_acknowledges_after_the_rename_without_journal(ternd_factory):
    """durability = relaxed (capture/test servers): the 250 comes once the copy is in
    new/ (nothing synced, the journal untouched); ternd says so at start."""
    t = ternd_factory(config="durability = relaxed\n")
    jr = t.data_dir / "spool" / "direct.journal"
    before = jr.read_bytes() if jr.exists() else b""
    with smtplib.SMTP(t.host, t.port, timeout=10) as s:
        for i in range(5):
            s.sendmail("a@example.net", ["alice@example.com"], b"Subject: r%d\r\n\r\nx\r\n" % i)
            # visible at the 250: the rename came first
            assert len(maildir_files(maildir_new(t.data_dir, "alice@example.com"))) == i + 1
    log = t.log()
    assert "event=durability-relaxed" in log
    assert "journal=yes" not in log
    assert (jr.read_bytes() if jr.exists() else b"") == before


def _delivered_lines(t, n):
    wait_until(lambda: t.log().count("event=delivered") >= n, what="%d delivered lines" % n)
    return [line for line in t.log().splitlines() if "event=delivered" in line]


def _big(kib, tag):
    line = b"x" * 76 + b"\r\n"
    return (b"Subject: %s\r\n\r\n" % tag.encode()) + line * (kib * 1024 // len(line))


def test_journal_takes_messages_up_to_128k(ternd):
    """Messages up to 128 KiB are acknowledged through the journal (one fdatasync of
    one file); bigger ones take the syncfs path. Both arrive whole."""
    with smtplib.SMTP(ternd.host, ternd.port, timeout=20) as s:
        s.sendmail("a@example.net", ["alice@example.com"], _big(100, "hundred"))
        s.sendmail("a@example.net", ["alice@example.com"], _big(200, "two hundred"))
    lines = _delivered_lines(ternd, 2)
    assert "journal=yes" in lines[0] and "journal=yes" not in lines[1], lines
    sizes = sorted(len(f.read_bytes()) for f in
                   wait_for_maildir_files(maildir_new(ternd.data_dir, "alice@example.com"), 2))
    assert sizes[0] > 100 * 1000 and sizes[1] > 200 * 1000


def test_journal_memory_budget(ternd_factory, monkeypatch):
    """Records are built in memory while messages arrive; all of them together stay
    under TERN_JOURNAL_MEM_MAX (default 64 MiB). A message that does not fit takes
    the syncfs path; the budget comes back when a message is done, so the next ones
    fit again."""
    monkeypatch.setenv("TERN_JOURNAL_MEM_MAX", "60000")
    t = ternd_factory()
    with smtplib.SMTP(t.host, t.port, timeout=20) as s:
        s.sendmail("a@example.net", ["alice@example.com"], _big(100, "over the budget"))
        for i in range(5):
            # the previous record is released once it is placed (its "delivered"
            # line comes after that); two 40 KiB records would not fit together
            _delivered_lines(t, i + 1)
            s.sendmail("a@example.net", ["alice@example.com"], _big(40, "fits %d" % i))
    lines = _delivered_lines(t, 6)
    assert "journal=yes" not in lines[0], lines
    assert all("journal=yes" in line for line in lines[1:]), lines
    assert len(wait_for_maildir_files(maildir_new(t.data_dir, "alice@example.com"), 6)) == 6


@pytest.mark.parametrize("early", ["1", "0"])
def test_big_message_arrives_whole_with_and_without_early_writeback(ternd_factory,
                                                                    monkeypatch, early):
    """A 6 MiB message (the syncfs path) is handed to writeback every 256 KiB
    while it arrives, on the direct-wb thread (TERN_DIRECT_EARLY_WB=0: not at all).
    Either way both copies hold exactly what was sent, line ends made LF, and the
    message after it is unaffected."""
    monkeypatch.setenv("TERN_DIRECT_EARLY_WB", early)
    t = ternd_factory()
    # numbered lines, so a chunk written twice or at the wrong offset would show
    body = b"".join(b"%07d " % i + b"y" * 70 + b"\r\n" for i in range(80000))
    msg = b"Subject: six MiB\r\n\r\n" + body
    with smtplib.SMTP(t.host, t.port, timeout=60) as s:
        s.sendmail("a@example.net", ["alice@example.com", "bob@example.com"], msg)
        s.sendmail("a@example.net", ["alice@example.com"], b"Subject: small\r\n\r\nafter\r\n")
    want = body.replace(b"\r\n", b"\n")
    for who, n in (("alice@example.com", 2), ("bob@example.com", 1)):
        files = wait_for_maildir_files(maildir_new(t.data_dir, who), n)
        raws = sorted((f.read_bytes() for f in files), key=len)
        assert raws[-1].endswith(b"\n\n" + want), who
        assert files[0].name.endswith(",S=%d" % len(files[0].read_bytes()))
        if n == 2:
            assert raws[0].endswith(b"\n\nafter\n")
    task = "/proc/%d/task" % t.proc.pid
    names = set()
    for tid in os.listdir(task):
        try:
            with open("%s/%s/comm" % (task, tid)) as f:
                names.add(f.read().strip())
        except FileNotFoundError:
            pass
    assert ("direct-wb" in names) == (early == "1"), names


def cached_pages(path):
    """(pages of path in the page cache, pages it has), by mincore(2)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    size = os.path.getsize(path)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
        vec = ctypes.create_string_buffer(pages)
        try:
            assert libc.mincore(addr, size, vec) == 0, ctypes.get_errno()
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)
    return sum(b & 1 for b in vec.raw), pages


@pytest.mark.parametrize("drop", ["default", "0"])
def test_big_message_leaves_page_cache_once_synced(ternd_factory, monkeypatch, drop):
    """A big message's copies (the syncfs path) leave the page cache once synced,
    before the 250: the next big messages are written into those pages rather than
    into fresh memory (TERN_DIRECT_DROP=0 keeps them). Small messages (the journal
    path) stay cached. The copies are whole either way."""
    if drop == "0":
        monkeypatch.setenv("TERN_DIRECT_DROP", "0")
    else:
        monkeypatch.delenv("TERN_DIRECT_DROP", raising=False)
    t = ternd_factory()
    body = b"".join(b"%07d " % i + b"z" * 70 + b"\r\n" for i in range(20000))
    with smtplib.SMTP(t.host, t.port, timeout=60) as s:
        s.sendmail("a@example.net", ["alice@example.com"], b"Subject: big\r\n\r\n" + body)
        s.sendmail("a@example.net", ["bob@example.com"], b"Subject: small\r\n\r\nhi\r\n")
    big = wait_for_maildir_files(maildir_new(t.data_dir, "alice@example.com"), 1)[0]
    small = wait_for_maildir_files(maildir_new(t.data_dir, "bob@example.com"), 1)[0]
    cached, pages = cached_pages(big)
    assert pages > 300
    if drop == "0":
        assert cached == pages
    else:
        assert cached == 0
    assert cached_pages(small)[0] == cached_pages(small)[1]
    assert big.read_bytes().endswith(b"\n\n" + body.replace(b"\r\n", b"\n"))

