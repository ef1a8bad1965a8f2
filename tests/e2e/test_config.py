"""Configuration files (docs/CONFIG.md): local domains, users, aliases, limits,
listener options, and how errors in the file are reported."""

import subprocess

import pytest

from conftest import TERND, SMTPConn, all_stored, read_stored, tern_cli


@pytest.fixture
def files(tmp_path):
    users = tmp_path / "users"
    users.write_text("# known users\nalice@example.com\nbob@example.com\ncarol\n")
    aliases = tmp_path / "aliases"
    aliases.write_text("# aliases(5)\npostmaster: alice\nteam: alice, bob@example.com\n")
    return {"users": users, "aliases": aliases}


def local_config(files, listener_opts=""):
    return """\
# a small deployment
hostname = mx.test.example
local_domains = example.com, example.org
users = %s
aliases = %s

[listener 127.0.0.1:{port}]
vrfy = yes
expn = yes
%s""" % (files["users"], files["aliases"], listener_opts)


def test_hostname_in_greeting(ternd_factory, files):
    srv = ternd_factory(config=local_config(files), listen=False)
    with SMTPConn(srv.host, srv.port) as c:
        r = c.expect(220)
        assert r.lines[0].startswith("mx.test.example ESMTP tern"), r


def test_relaying_denied(ternd_factory, files):
    srv = ternd_factory(config=local_config(files), listen=False)
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@example.net>", 250)
    r = c.cmd("RCPT TO:<someone@elsewhere.example>", 554)
    assert r.lines[0].startswith("5.7.1 Relay access denied"), r
    c.cmd("RCPT TO:<alice@example.com>", 250)


def test_unknown_user(ternd_factory, files):
    srv = ternd_factory(config=local_config(files), listen=False)
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@example.net>", 250)
    r = c.cmd("RCPT TO:<nosuchuser@example.com>", 550)
    assert r.lines[0].startswith("5.1.1"), r
    c.cmd("RCPT TO:<ALICE@Example.COM>", 250)   # case-insensitive
    c.cmd("RCPT TO:<carol@example.org>", 250)   # bare user: any local domain
    c.cmd("RCPT TO:<postmaster@example.com>", 250)


def test_alias_delivery(ternd_factory, files):
    srv = ternd_factory(config=local_config(files), listen=False)
    with srv.smtp() as s:
        s.sendmail("sender@example.net", ["team@example.com"],
                   b"Subject: to the team\r\n\r\nhello team\r\n")
    for rcpt in ("alice@example.com", "bob@example.com"):
        st = read_stored(srv.wait_mail(rcpt, 1)[0])
        assert st.message == b"Subject: to the team\n\nhello team\n"
    assert len(all_stored(srv.data_dir)) == 2


def test_vrfy_and_expn(ternd_factory, files):
    srv = ternd_factory(config=local_config(files), listen=False)
    c = srv.connect()
    c.ehlo()
    c.cmd("VRFY alice@example.com", 250)
    c.cmd("VRFY nosuchuser@example.com", 550)
    r = c.cmd("EXPN team@example.com", 250)
    assert len(r.lines) >= 2, r
    text = r.text.lower()
    assert "alice@example.com" in text and "bob@example.com" in text


def test_require_helo(ternd_factory, files):
    srv = ternd_factory(config=local_config(files, "require_helo = yes\n"), listen=False)
    c = srv.connect()
    c.cmd("MAIL FROM:<sender@example.net>", 503)
    c.ehlo()
    c.cmd("MAIL FROM:<sender@example.net>", 250)


def test_size_limit_from_config(ternd_factory):
    srv = ternd_factory(config="max_message_size = 2000\n")
    c = srv.connect()
    r = c.ehlo()
    assert "SIZE 2000" in [x.upper() for x in r.lines[1:]], r
    c.cmd("MAIL FROM:<sender@example.net> SIZE=2001", 552)
    c.cmd("MAIL FROM:<sender@example.net> SIZE=1500", 250)
    c.cmd("RCPT TO:<alice@example.com>", 250)
    c.cmd("DATA", 354)
    # too big: the server reads on to the final dot, then refuses the whole message
    c.send(b"Subject: big\r\n\r\n" + (b"y" * 78 + b"\r\n") * 40 + b".\r\n")
    c.expect(552)
    c.cmd("NOOP", 250)
    c.cmd("QUIT", 221)
    c.close()
    assert all_stored(srv.data_dir) == []


def test_recipient_limit_from_config(ternd_factory):
    srv = ternd_factory(config="max_recipients = 100\n")
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@example.net>", 250)
    c.send("".join("RCPT TO:<r%d@example.com>\r\n" % i for i in range(101)))
    codes = [c.reply().code for _ in range(101)]
    assert codes == [250] * 100 + [452]


def test_error_limit_from_config(ternd_factory):
    srv = ternd_factory(config="max_errors = 3\n")
    c = srv.connect()
    codes = []
    for _ in range(10):
        codes.append(c.cmd("BOGUS").code)
        if codes[-1] == 421:
            break
    assert codes[-1] == 421, codes
    assert codes[:-1] == [500] * (len(codes) - 1) and 3 <= len(codes) <= 4, codes
    assert c.is_closed()


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_check_config_valid(tmp_path, files):
    p = write(tmp_path, "good.conf", local_config(files).replace("{port}", "2525"))
    r = tern_cli("check-config", str(p))
    assert r.returncode == 0, r.stdout + r.stderr


BAD_CONFIGS = [
    ("hostname = ok.example\nmax_recipients = lots\n", 2),
    ("hostname = ok.example\n\nno_such_option = 1\n", 3),
    ("[listener 127.0.0.1:2525]\nlenient_lf = perhaps\n", 2),
    ("[listener 127.0.0.1:99999]\n", 1),
    ("hostname\n", 1),
    ("hostname = a.example\ndurability = sometimes\n", 2),
]


@pytest.mark.parametrize("text,line", BAD_CONFIGS)
def test_check_config_reports_file_and_line(tmp_path, text, line):
    p = write(tmp_path, "bad.conf", text)
    r = tern_cli("check-config", str(p))
    assert r.returncode != 0
    assert "%s:%d:" % (p, line) in r.stderr, r.stderr


def test_check_config_missing_users_file(tmp_path):
    p = write(tmp_path, "bad.conf", "local_domains = example.com\nusers = %s\n"
              % (tmp_path / "absent"))
    r = tern_cli("check-config", str(p))
    assert r.returncode != 0
    assert str(tmp_path / "absent") in r.stderr


@pytest.mark.parametrize("text,line", BAD_CONFIGS[:2])
def test_ternd_refuses_bad_config(tmp_path, text, line):
    p = write(tmp_path, "bad.conf", text)
    proc = subprocess.Popen([str(TERND), "-c", str(p), "--listen", "127.0.0.1:0",
                             "--data", str(tmp_path / "var")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("ternd kept running with a bad config file")
    assert proc.returncode != 0
    assert "%s:%d:" % (p, line) in err, err
