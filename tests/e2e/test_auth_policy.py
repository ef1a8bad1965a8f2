"""AUTH policy beyond one session (issue 5): brute-force throttling per client IP
(auth_ip_max_failures / auth_ip_window) and the sender-login rules
(sender_login_maps, sender_must_match_login). Plaintext AUTH on loopback keeps the
dialogues short; TLS itself is covered by test_tls_auth.py."""

import base64

import pytest

from conftest import SMTPConn
from test_tls_auth import PASSWORD, hash_pw


def plain(user, pw):
    return base64.b64encode(("\0%s\0%s" % (user, pw)).encode()).decode()


@pytest.fixture
def users(tmp_path):
    d = tmp_path / "etc"
    d.mkdir()
    h = hash_pw("--sha512")  # fast enough for many checks
    (d / "users").write_text("alice:%s\nbob:%s\ncarol@example.net:%s\n" % (h, h, h))
    return d


def make(ternd_factory, users, extra=""):
    return ternd_factory(config="""hostname = mx.test.example
local_domains = example.com, example.org
users = {users}
auth_fail_delay = 0
{extra}
[listener 127.0.0.1:{{port}}]
auth = yes
allow_plaintext_auth = yes
""".format(users=users / "users", extra=extra), listen=False)


def session(t, source="127.0.0.1"):
    c = SMTPConn(t.host, t.port, source=source)
    c.greet()
    c.ehlo()
    return c


def test_failures_throttled_per_ip_across_sessions(ternd_factory, users):
    t = make(ternd_factory, users, "auth_ip_max_failures = 2\nauth_ip_window = 10m")
    with session(t) as c:
        c.cmd("AUTH PLAIN " + plain("alice", "wrong"), 535)
    with session(t) as c:
        c.cmd("AUTH PLAIN " + plain("alice", "wrong"), 535)
        # the second failure from 127.0.0.1 reaches the limit: even the right
        # password is now answered with a temporary failure
        c.cmd("AUTH PLAIN " + plain("alice", PASSWORD), 454, text="4.7.0")
    with session(t) as c:
        c.cmd("AUTH PLAIN " + plain("alice", PASSWORD), 454,
              text="Temporary authentication failure")
        c.cmd("AUTH LOGIN", 454)  # the challenge form is throttled before it starts
        c.cmd("MAIL FROM:<x@example.com>", 250)  # the session itself goes on
    # another client address is not affected
    with session(t, source="127.0.0.2") as c:
        c.cmd("AUTH PLAIN " + plain("alice", PASSWORD), 235)
    assert "result=throttled client=127.0.0.1" in t.log()
    assert PASSWORD not in t.log() and "wrong" not in t.log()


def test_throttled_attempts_count_toward_session_limit(ternd_factory, users):
    t = make(ternd_factory, users, "auth_ip_max_failures = 1\nauth_max_failures = 3")
    with session(t) as c:
        c.cmd("AUTH PLAIN " + plain("bob", "wrong"), 535)
        c.cmd("AUTH PLAIN " + plain("bob", PASSWORD), 454)
        c.send("AUTH PLAIN " + plain("bob", PASSWORD) + "\r\n")
        c.expect(454)
        c.expect(421, text="4.7.0")
        assert c.is_closed()


def test_throttle_window_decays(ternd_factory, users):
    t = make(ternd_factory, users, "auth_ip_max_failures = 1\nauth_ip_window = 2s")
    with session(t) as c:
        c.cmd("AUTH PLAIN " + plain("bob", "wrong"), 535)
        c.cmd("AUTH PLAIN " + plain("bob", PASSWORD), 454)
    import time
    time.sleep(4.2)  # two whole windows: nothing left
    with session(t) as c:
        c.cmd("AUTH PLAIN " + plain("bob", PASSWORD), 235)


def test_throttle_off_with_zero(ternd_factory, users):
    t = make(ternd_factory, users, "auth_ip_max_failures = 0\nauth_max_failures = 10")
    with session(t) as c:
        for _ in range(5):
            c.cmd("AUTH PLAIN " + plain("bob", "wrong"), 535)
        c.cmd("AUTH PLAIN " + plain("bob", PASSWORD), 235)


def login(t, user):
    c = session(t)
    c.cmd("AUTH PLAIN " + plain(user, PASSWORD), 235)
    return c


def test_sender_login_map(ternd_factory, users):
    (users / "senders").write_text(
        "# sender: logins\n"
        "info@example.com: alice, bob\n"
        "@example.org: bob\n"
        "boss@example.org: alice\n")
    t = make(ternd_factory, users, "sender_login_maps = %s" % (users / "senders"))
    with login(t, "alice") as c:
        c.cmd("MAIL FROM:<info@example.com>", 250)
        c.cmd("RSET", 250)
        c.cmd("MAIL FROM:<Boss@Example.ORG>", 250)   # case does not matter
        c.cmd("RSET", 250)
        r = c.cmd("MAIL FROM:<anyone@example.org>", 553)
        assert r.text == "5.7.1 Sender address rejected: not owned by user alice"
        c.cmd("MAIL FROM:<alice@example.com>", 553)  # not in the map: nobody owns it
        c.cmd("MAIL FROM:<>", 250)                    # bounces are not checked
    with login(t, "bob") as c:
        c.cmd("MAIL FROM:<anyone@example.org>", 250)  # @domain entry
        c.cmd("RSET", 250)
        c.cmd("MAIL FROM:<boss@example.org>", 553, text="not owned by user bob")
    # unauthenticated sessions (port 25 inbound mail) are not checked
    with session(t) as c:
        c.cmd("MAIL FROM:<boss@example.org>", 250)
    assert "event=sender-login-mismatch" in t.log()


def test_sender_must_match_login(ternd_factory, users):
    t = make(ternd_factory, users, "sender_must_match_login = yes")
    with login(t, "alice") as c:
        c.cmd("MAIL FROM:<alice@example.com>", 250)
        c.cmd("RCPT TO:<bob@example.com>", 250)
        c.cmd("DATA", 354)
        c.send("Subject: mine\r\n\r\nhi\r\n.\r\n")
        c.expect(250)
        c.cmd("MAIL FROM:<alice@example.org>", 250)   # any local domain
        c.cmd("RSET", 250)
        c.cmd("MAIL FROM:<bob@example.com>", 553, text="not owned by user alice")
        c.cmd("MAIL FROM:<alice@elsewhere.example>", 553)
    t.wait_mail("bob@example.com")
    with login(t, "alice@example.org") as c:     # login with a domain: that address only
        c.cmd("MAIL FROM:<alice@example.com>", 553, text="not owned by user alice@example.org")
        c.cmd("MAIL FROM:<alice@example.org>", 250)
    with login(t, "carol@example.net") as c:     # users-file entry with its own domain
        c.cmd("MAIL FROM:<carol@example.net>", 250)


def test_login_with_foreign_domain_refused(ternd_factory, users):
    """A bare users-file name answers only for local domains, so a login cannot
    carry a domain of the client's choosing."""
    t = make(ternd_factory, users, "sender_must_match_login = yes")
    with session(t) as c:
        c.cmd("AUTH PLAIN " + plain("alice@evil.example", PASSWORD), 535)


def test_map_and_rule_together(ternd_factory, users):
    (users / "senders").write_text("sales@example.com: bob\n")
    t = make(ternd_factory, users,
             "sender_login_maps = %s\nsender_must_match_login = yes" % (users / "senders"))
    with login(t, "bob") as c:
        c.cmd("MAIL FROM:<bob@example.com>", 250)
        c.cmd("RSET", 250)
        c.cmd("MAIL FROM:<sales@example.com>", 250)
        c.cmd("RSET", 250)
        c.cmd("MAIL FROM:<alice@example.com>", 553)


@pytest.mark.parametrize("text,msg", [
    ("nocolon\n", "missing ':'"),
    ("info@example.com:\n", "has no logins"),
    ("bad sender: alice\n", "bad sender"),
    ("info@example.com: al ice\n", "bad login"),
    ("a@example.com: x\nA@example.com: y\n", "duplicate sender"),
])
def test_sender_map_errors(tmp_path, users, text, msg):
    from conftest import tern_cli
    (users / "senders").write_text(text)
    conf = tmp_path / "t.conf"
    conf.write_text("users = %s\nsender_login_maps = %s\n" % (users / "users",
                                                             users / "senders"))
    r = tern_cli("check-config", str(conf))
    assert r.returncode != 0 and msg in r.stderr, r.stderr
