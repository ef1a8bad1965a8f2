"""DSN parameters (RFC 3461) given to the tern client reach ternd and change what
comes back: `tern send --notify/--ret/--envid`, `sendmail -N/-R/-V`, the MAIL and
RCPT parameters of `sendmail -bs`, and the maildrop file written when ternd is down
(picked up later). ternd relays bob@sender.test (an alias) to bob@remote.test, whose
server (a scripted fake on 127.0.0.2, found through dnsmasq) refuses it with 550:
with NOTIFY=NEVER no bounce comes; otherwise the bounce to alice carries the ENVID and
ORCPT, and with RET=HDRS only the header of the message."""

import os
import subprocess
import time

import pytest

from conftest import BUILD, TERN, maildir_files, wait_until
from test_relay import dnsmasq, sender_with_fake, serve  # noqa: F401 (fixture)
from test_sendmail_bs import BS

BODY = "the secret body line"


def refuse(rcv, c, n):
    serve(rcv, c, rcpt_reply=b"550 5.1.1 no such user")


def clean_env(**extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith("TERN_")}
    e.update(extra)
    return e


def tern(*args, env=None, input=None, argv0=TERN):
    return subprocess.run([str(argv0), *args], env=env or clean_env(), input=input,
                          capture_output=True, timeout=60)


@pytest.fixture
def relay(ternd_factory, dnsmasq):
    rcv, send = sender_with_fake(ternd_factory, dnsmasq, refuse)
    yield send
    rcv.close()


def bounces(t):
    return [f.read_bytes() for f in maildir_files(t.mailbox("alice@sender.test"))]


def one_bounce(t):
    t.wait_mail("alice@sender.test", timeout=20)
    wait_until(lambda: "event=removed" in t.log(), timeout=15, what="original removed")
    time.sleep(0.5)
    got = bounces(t)
    assert len(got) == 1, got
    assert b"Action: failed" in got[0]
    return got[0]


def no_bounce(t):
    wait_until(lambda: "reason=notify" in t.log(), timeout=20, what="NOTIFY=NEVER honoured")
    wait_until(lambda: "event=removed" in t.log(), timeout=15, what="original removed")
    time.sleep(0.5)
    assert bounces(t) == []


def test_send_ret_hdrs_envid_notify(relay):
    r = tern("send", "--server", "127.0.0.1:%d" % relay.port, "--tls", "none", "-v",
             "--from", "alice@sender.test", "--to", "bob@sender.test", "--subject", "dsn",
             "--body", BODY, "--ret", "HDRS", "--envid", "job 42+x", "--notify",
             "failure,delay")
    assert r.returncode == 0, r.stderr
    trace = r.stderr.decode()
    assert "C: MAIL FROM:<alice@sender.test>" in trace and " RET=HDRS ENVID=job+2042+2Bx" in trace
    assert "C: RCPT TO:<bob@sender.test> NOTIFY=FAILURE,DELAY" in trace
    raw = one_bounce(relay)
    assert b"Original-Envelope-Id: job+2042+2Bx" in raw
    assert b"Content-Type: text/rfc822-headers" in raw and b"Subject: dsn" in raw
    assert BODY.encode() not in raw


def test_send_notify_never(relay):
    r = tern("send", "--server", "127.0.0.1:%d" % relay.port, "--tls", "none",
             "--from", "alice@sender.test", "--to", "bob@sender.test", "--body", BODY,
             "--notify", "never")
    assert r.returncode == 0, r.stderr
    no_bounce(relay)


@pytest.mark.parametrize("args,msg", [
    (["--notify", "sometimes"], "--notify: NOTIFY \"sometimes\""),
    (["--notify", "never,failure"], "--notify"),
    (["--ret", "partial"], "--ret: RET \"partial\": want full or hdrs"),
    (["--envid", "caf\u00e9"], "--envid: ENVID: want printable ASCII"),
    (["--envid", "x" * 101], "--envid: ENVID: too long"),
])
def test_send_bad_dsn_options(args, msg):
    r = tern("send", "--server", "127.0.0.1:9", "--from", "a@b.test", "--to", "c@d.test",
             "--body", "x", *args)
    assert r.returncode == 64, r.stderr
    assert msg in r.stderr.decode(), r.stderr


def test_sendmail_N_R_V(relay):
    env = clean_env(TERN_SERVER="127.0.0.1:%d" % relay.port)
    msg = ("Subject: via sendmail\n\n%s\n" % BODY).encode()
    r = tern("sendmail", "-f", "alice@sender.test", "-R", "hdrs", "-Vcron-7", "-N",
             "failure", "bob@sender.test", env=env, input=msg)
    assert r.returncode == 0, r.stderr
    raw = one_bounce(relay)
    assert b"Original-Envelope-Id: cron-7" in raw and b"Subject: via sendmail" in raw
    assert BODY.encode() not in raw
    # the same through the "sendmail" name, asking for no report at all
    r = tern("-N", "never", "-f", "alice@sender.test", "bob@sender.test", env=env,
             input=msg, argv0=BUILD / "sendmail")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: "reason=notify" in relay.log(), timeout=20, what="NOTIFY=NEVER")
    time.sleep(0.5)
    assert len(bounces(relay)) == 1


@pytest.mark.parametrize("args,msg", [
    (["-N", "maybe"], "-N: NOTIFY \"maybe\""),
    (["-R", "body"], "-R: RET \"body\""),
    (["-V", "a\tb"], "-V: ENVID"),
])
def test_sendmail_bad_dsn_options(args, msg):
    r = tern("sendmail", *args, "x@y.test", input=b"Subject: x\n\nx\n",
             env=clean_env(TERN_SERVER="127.0.0.1:9"))
    assert r.returncode == 64, r.stderr
    assert msg in r.stderr.decode(), r.stderr


def test_sendmail_V_is_not_taken_for_a_recipient(tmp_path):
    """-V takes a value: "-V id rcpt" has one recipient, not two."""
    drop = tmp_path / "drop"
    r = tern("sendmail", "-V", "id-1", "-f", "a@b.test", "rcpt@c.test",
             input=b"Subject: x\n\nx\n", env=clean_env(TERN_SERVER="127.0.0.1:9",
                                                      TERN_MAILDROP=str(drop)))
    assert r.returncode == 0, r.stderr
    (f,) = list((drop / "new").iterdir())
    assert f.read_bytes().split(b"\n\n")[0].split(b"\n") == [
        b"X-Tern-Sender: <a@b.test> ENVID=id-1", b"X-Tern-Rcpt: <rcpt@c.test>"]


def test_bs_passes_dsn_parameters(relay):
    bs = BS(env=clean_env(TERN_SERVER="127.0.0.1:%d" % relay.port))
    assert bs.reply()[0] == 220
    assert "DSN" in bs.cmd("EHLO c.test", 250)
    bs.cmd("MAIL FROM:<alice@sender.test> RET=HDRS ENVID=bs+2B1", 250)
    bs.cmd("RCPT TO:<bob@sender.test> NOTIFY=FAILURE ORCPT=rfc822;bob@sender.test", 250)
    bs.cmd("DATA", 354)
    bs.send("Subject: bs dsn\r\n\r\n%s\r\n.\r\n" % BODY)
    assert bs.reply()[0] == 250
    bs.cmd("MAIL FROM:<alice@sender.test>", 250)
    bs.cmd("RCPT TO:<bob@sender.test> NOTIFY=NEVER", 250)
    bs.cmd("DATA", 354)
    bs.send("Subject: no report\r\n\r\nx\r\n.\r\n")
    assert bs.reply()[0] == 250
    # a bad parameter is refused by the engine, as ternd itself would
    bs.cmd("MAIL FROM:<alice@sender.test>", 250)
    bs.cmd("RCPT TO:<bob@sender.test> NOTIFY=NEVER,DELAY", 555)
    bs.cmd("QUIT", 221)
    assert bs.finish()[0] == 0
    # the second message's refusal makes no report; the first one's does
    wait_until(lambda: "reason=notify" in relay.log(), timeout=20, what="NOTIFY=NEVER")
    relay.wait_mail("alice@sender.test", timeout=20)
    time.sleep(1)
    got = bounces(relay)
    assert len(got) == 1, got
    raw = got[0]
    assert b"Original-Envelope-Id: bs+2B1" in raw
    assert b"Original-Recipient: rfc822;bob@sender.test" in raw
    assert b"Subject: bs dsn" in raw and BODY.encode() not in raw


def test_maildrop_keeps_dsn_parameters_until_pickup(ternd_factory, dnsmasq, tmp_path):
    """ternd down: sendmail -bs writes the parameters into the maildrop file; the
    relaying ternd started later picks it up and honours them."""
    data = tmp_path / "var"
    drop = data / "maildrop"
    bs = BS(env=clean_env(TERN_SERVER="127.0.0.1:9", TERN_MAILDROP=str(drop)))
    assert bs.reply()[0] == 220
    bs.cmd("EHLO c.test", 250)
    bs.cmd("MAIL FROM:<alice@sender.test> RET=HDRS ENVID=drop-1", 250)
    bs.cmd("RCPT TO:<bob@sender.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@sender.test", 250)
    bs.cmd("RCPT TO:<carol@sender.test>", 250)
    bs.cmd("DATA", 354)
    bs.send("Subject: dropped\r\n\r\n%s\r\n.\r\n" % BODY)
    code, text = bs.reply()
    assert code == 250 and "maildrop/" in text[0], text
    bs.cmd("QUIT", 221)
    assert bs.finish()[0] == 0
    (f,) = list((drop / "new").iterdir())
    assert f.read_bytes().split(b"\n\n")[0].split(b"\n") == [
        b"X-Tern-Sender: <alice@sender.test> RET=HDRS ENVID=drop-1",
        b"X-Tern-Rcpt: <bob@sender.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@sender.test",
        b"X-Tern-Rcpt: <carol@sender.test>"]

    from test_relay import common_port, make_sender, Receiver
    rport = common_port(["127.0.0.2"])
    dns = dnsmasq(["--mx-host=remote.test,mx1.remote.test,10",
                   "--host-record=mx1.remote.test,127.0.0.2"])
    rcv = Receiver("127.0.0.2", rport, refuse)
    try:
        t = ternd_factory(data_dir=data, start=False,
                          config=("hostname = sender.test\nlocal_domains = sender.test\n"
                                  "aliases = aliases\nresolver = 127.0.0.1:%d\n"
                                  "relay_port = %d\nretry_first = 1s\nretry_max = 1s\n"
                                  "relay_timeout = 5s\n" % (dns, rport)))
        (t.tmp / "aliases").write_text("bob: bob@remote.test\n")
        t.start()
        t.wait_mail("carol@sender.test", timeout=20)
        raw = one_bounce(t)
        assert b"Original-Envelope-Id: drop-1" in raw
        assert b"Original-Recipient: rfc822;bob@sender.test" in raw
        assert BODY.encode() not in raw
    finally:
        rcv.close()


def test_bad_parameters_in_a_maildrop_file_are_quarantined(ternd_factory, tmp_path):
    data = tmp_path / "var"
    new = data / "maildrop" / "new"
    new.mkdir(parents=True)
    (data / "maildrop" / "tmp").mkdir()
    (new / "bad1").write_bytes(b"X-Tern-Sender: <a@example.com> RET=SOME\n"
                               b"X-Tern-Rcpt: <b@example.com>\n\nx\n")
    (new / "bad2").write_bytes(b"X-Tern-Sender: <a@example.com>\n"
                               b"X-Tern-Rcpt: <b@example.com> NOTIFY=NEVER,FAILURE\n\nx\n")
    (new / "bad3").write_bytes(b"X-Tern-Sender: <a@example.com>\n"
                               b"X-Tern-Rcpt: <b@example.com>NOTIFY=NEVER\n\nx\n")
    (new / "bad4").write_bytes(b"X-Tern-Sender: <a@example.com>\n"
                               b"X-Tern-Rcpt: <b@example.com> ORCPT=rfc\r822;b@x\n\nx\n")
    t = ternd_factory(data_dir=data)
    wait_until(lambda: not list(new.iterdir()), timeout=10, what="maildrop scanned")
    log = t.log()
    assert "bad sender parameters" in log and "bad recipient parameters" in log
    assert "file=bad4 reason=\"bad recipient parameters\"" in log, log
    assert maildir_files(t.mailbox("b@example.com")) == []


def test_server_without_dsn_gets_no_parameters(tmp_path):
    """aiosmtpd offers no DSN: the parameters are left out (ternd's defaults apply
    downstream) and -v says so, instead of a 555 for every recipient."""
    aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
    from test_client_send import Recorder, start_server
    handler = Recorder()
    ctl, port = start_server(handler)
    try:
        r = tern("send", "--server", "127.0.0.1:%d" % port, "--tls", "none", "-v",
                 "--from", "a@b.test", "--to", "c@d.test", "--body", "x", "--notify",
                 "never", "--ret", "hdrs")
        assert r.returncode == 0, r.stderr
        assert "does not offer DSN: NOTIFY, RET, ENVID and ORCPT are not sent" in \
            r.stderr.decode()
        (env,) = handler.envelopes
        # (a NOTIFY on RCPT would have been refused: aiosmtpd knows no DSN)
        assert env[1] == ["c@d.test"]
        assert not [o for o in env[3] if o.upper().startswith(("RET=", "ENVID="))], env[3]
    finally:
        ctl.stop()
    del aiosmtpd_controller


def test_orcpt_addr_type_must_be_an_atom(ternd):
    """ORCPT=TYPE;ADDR: the type goes into a report's Original-Recipient field as
    given, so only letters, digits and '-' pass (fuzz/smtp_dsn_fuzz.c found other
    bytes getting through; over SMTP a control byte already ends the line's chances,
    500; a maildrop file could carry one: test_bad_parameters_in_a_maildrop_file)."""
    import smtplib
    with smtplib.SMTP(ternd.host, ternd.port, timeout=10) as s:
        s.ehlo()
        assert s.mail("a@example.net")[0] == 250
        assert s.rcpt("x@example.com", ["ORCPT=rf\x01c;x@example.com"])[0] == 500
        assert s.rcpt("x@example.com", ["ORCPT=r.c;x@example.com"])[0] == 555
        assert s.rcpt("x@example.com", ["ORCPT=utf-8;x@example.com"])[0] == 250
