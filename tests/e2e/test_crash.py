"""A 250 is a promise: kill -9 ternd while clients send, restart it on the same data
directory, and every acknowledged message must reach a Maildir (duplicates allowed,
loss never)."""

import smtplib
import threading

from conftest import all_stored, wait_until

THREADS = 4
ACKED_BEFORE_KILL = 40


def test_kill9_loses_no_acknowledged_message(ternd):
    acked = set()
    lock = threading.Lock()
    stop = threading.Event()

    def client(n):
        i = 0
        while not stop.is_set():
            mid = "crash-%d-%d" % (n, i)
            raw = ("From: c%d@example.net\r\nTo: box%d@example.com\r\nSubject: %s\r\n"
                   "Message-ID: <%s@example.net>\r\n\r\nmessage %s\r\n"
                   % (n, n, mid, mid, mid)).encode()
            i += 1
            try:
                with smtplib.SMTP(ternd.host, ternd.port, timeout=5) as s:
                    s.sendmail("c%d@example.net" % n, ["box%d@example.com" % n], raw)
            except (OSError, smtplib.SMTPException):
                continue  # not acknowledged: no promise was made
            with lock:
                acked.add(mid)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(THREADS)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(acked) >= ACKED_BEFORE_KILL, timeout=30,
                   what="%d acknowledged messages" % ACKED_BEFORE_KILL)
        ternd.kill9()
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    promised = set(acked)
    ternd.restart()

    def missing():
        found = set()
        for p in all_stored(ternd.data_dir):
            for line in p.read_bytes().split(b"\n"):
                if line.startswith(b"Subject: crash-"):
                    found.add(line[len(b"Subject: "):].decode())
                    break
        return promised - found

    try:
        wait_until(lambda: not missing(), timeout=30, interval=0.2,
                   what="all acknowledged messages in Maildirs")
    except AssertionError:
        lost = sorted(missing())
        raise AssertionError("%d of %d acknowledged messages lost after kill -9: %s"
                             % (len(lost), len(promised), lost[:20])) from None
    # the restarted server still takes mail
    with smtplib.SMTP(ternd.host, ternd.port, timeout=5) as s:
        s.sendmail("after@example.net", ["after@example.com"], b"Subject: after\r\n\r\nok\r\n")
    ternd.wait_mail("after@example.com", 1)
