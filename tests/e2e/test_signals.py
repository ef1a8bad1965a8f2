"""Shutting down: SIGTERM ends ternd cleanly (exit 0) and tells open sessions 421."""

import signal

from conftest import read_stored


def test_sigterm_sends_421_and_exits_0(ternd):
    idle = ternd.connect()
    idle.ehlo()
    busy = ternd.connect()
    busy.ehlo()
    busy.cmd("MAIL FROM:<sender@example.net>", 250)
    busy.cmd("RCPT TO:<alice@example.com>", 250)
    ternd.proc.send_signal(signal.SIGTERM)
    for c in (idle, busy):
        r = c.expect(421)
        assert r.lines[0].startswith("4."), r
        assert c.is_closed()
    rc = ternd.proc.wait(10)
    assert rc == 0, ternd.log()
    ternd.check_sanitizers()
    ternd.proc = None


def test_acknowledged_mail_survives_restart(ternd):
    with ternd.smtp() as s:
        s.sendmail("sender@example.net", ["alice@example.com"], b"Subject: kept\r\n\r\nkept\r\n")
    ternd.stop()
    ternd.restart()
    st = read_stored(ternd.wait_mail("alice@example.com", 1)[0])
    assert st.message == b"Subject: kept\n\nkept\n"
