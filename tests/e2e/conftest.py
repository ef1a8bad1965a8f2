"""Fixtures for the end-to-end tests: a real ternd on a free loopback port in a
temporary directory, a raw SMTP socket client, Maildir helpers, and a real Dovecot
IMAP server reading the Maildirs ternd writes.

Which build is tested comes from $TERN_BUILD (default "build"; scripts/run-tests.sh
runs the suite once with "build" and once with "build-asan").

Every process a test starts is ended by its PID (SIGTERM, then SIGKILL if needed).
"""

import os
import pwd
import grp
import shutil
import signal
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("TERN_BUILD", "build"))
if not BUILD.is_absolute():
    BUILD = REPO / BUILD
TERND = BUILD / "ternd"
TERN = BUILD / "tern"

START_TIMEOUT = 10.0
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


# ---------------------------------------------------------------------------
# small helpers


_ISSUED_PORTS = set()


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now (the kernel picks it), and not one this
    run handed out before: a test that asks for two ports before starting ternd
    (a second listener) could otherwise get the same one twice ("duplicate
    listener")."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _ISSUED_PORTS:
            break
    _ISSUED_PORTS.add(port)
    return port


def is_listening(port):
    """True if some socket is in LISTEN state on this TCP port. Reading /proc instead
    of connecting keeps the check from opening an SMTP session (which would count
    against connection limits)."""
    want = ":%04X" % port
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[1].endswith(want) and fields[3] == "0A":
                        return True
        except FileNotFoundError:
            continue
    return False


def wait_until(pred, timeout=5.0, interval=0.02, what="condition"):
    """Poll pred() until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def rss_kb(pid):
    """Resident set size of a process in KiB (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def maildir_new(data_dir, addr):
    """<data>/mail/<domain>/<user>/Maildir/new/ for user@domain (lowercased)."""
    user, _, domain = addr.lower().rpartition("@")
    return Path(data_dir) / "mail" / domain / user / "Maildir" / "new"


def maildir_files(path):
    p = Path(path)
    if not p.is_dir():
        return []
    return sorted(x for x in p.iterdir() if x.is_file() and not x.name.startswith("."))


def wait_for_maildir_files(path, n=1, timeout=10.0):
    """Poll until the Maildir directory `path` (a new/ dir) holds at least n files;
    return them. Delivery happens after the 250, so tests must wait for it."""
    try:
        return wait_until(lambda: (lambda f: f if len(f) >= n else None)(maildir_files(path)),
                          timeout=timeout, what="%d file(s) in %s" % (n, path))
    except AssertionError:
        raise AssertionError("expected %d file(s) in %s, found %d" %
                             (n, path, len(maildir_files(path)))) from None


def wait_for_mail(data_dir, addr, n=1, timeout=10.0):
    return wait_for_maildir_files(maildir_new(data_dir, addr), n, timeout)


def all_stored(data_dir):
    """Every file in every Maildir new/ and cur/ under <data>/mail."""
    root = Path(data_dir) / "mail"
    if not root.is_dir():
        return []
    out = []
    for sub in ("new", "cur"):
        out.extend(p for p in root.glob("*/*/Maildir/%s/*" % sub) if p.is_file())
    return sorted(out)


class Stored:
    """A message as ternd stored it: the trace headers ternd added, and the rest."""

    def __init__(self, raw):
        self.raw = raw
        lines = raw.split(b"\n")
        assert lines[0].startswith(b"Return-Path: "), raw[:200]
        assert lines[1].startswith(b"Delivered-To: "), raw[:200]
        assert lines[2].startswith(b"Received: "), raw[:200]
        self.return_path = lines[0][len(b"Return-Path: "):].decode()
        self.delivered_to = lines[1][len(b"Delivered-To: "):].decode()
        i = 3
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1  # continuation lines of the Received: header
        self.received = b"\n".join(lines[2:i])
        self.message = b"\n".join(lines[i:])  # the message as sent, LF line ends


def read_stored(path):
    return Stored(Path(path).read_bytes())


def crlf_to_lf(b):
    return b.replace(b"\r\n", b"\n")


# ---------------------------------------------------------------------------
# raw SMTP client


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines  # text after "NNN-" / "NNN "

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return "Reply(%d, %r)" % (self.code, self.lines)


class SMTPConn:
    """A bare socket speaking SMTP, for what smtplib will not send."""

    def __init__(self, host, port, timeout=5.0, source=None):
        src = (source, 0) if source else None
        self.sock = socket.create_connection((host, port), timeout=timeout, source_address=src)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def read_line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        assert line.endswith(b"\r"), "reply line not ended by CRLF: %r" % line
        return line[:-1].decode("utf-8", "replace")

    def reply(self):
        """Read one reply, however many lines it has."""
        lines = []
        while True:
            line = self.read_line()
            assert len(line) >= 3 and line[:3].isdigit(), "bad reply line %r" % line
            code = int(line[:3])
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return Reply(code, lines)
            assert line[3] == "-", "bad reply line %r" % line

    def expect(self, code, *, text=None):
        """Read a reply and check its code (an int, or a tuple of allowed ints)."""
        r = self.reply()
        codes = code if isinstance(code, tuple) else (code,)
        assert r.code in codes, "expected %s, got %r" % (code, r)
        if text is not None:
            assert text.lower() in r.text.lower(), "expected %r in %r" % (text, r)
        return r

    def cmd(self, line, code=None, **kw):
        self.send(line + "\r\n")
        return self.expect(code, **kw) if code is not None else self.reply()

    def greet(self):
        return self.expect(220)

    def ehlo(self, name="client.test"):
        return self.cmd("EHLO " + name, 250)

    def is_closed(self, timeout=5.0):
        """True if the server closes the connection (EOF) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# ---------------------------------------------------------------------------
# ternd


class Ternd:
    """One ternd process. Config text may use {port}, {data} and {tmp}; they are
    replaced before the file is written (so a [listener 127.0.0.1:{port}] section
    can name the fixture's port)."""

    def __init__(self, tmp, config=None, args=(), data_dir=None, listen=True,
                 host="127.0.0.1", port=None):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.data_dir = Path(data_dir) if data_dir else self.tmp / "var"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = None
        self._config = config
        self._port_given = port is not None
        self._write_config()
        self.args = list(args)
        self.listen = listen
        self.proc = None
        self.starts = 0
        self.stderr_path = None

    def _write_config(self):
        if self._config is not None:
            text = (self._config.replace("{port}", str(self.port))
                    .replace("{data}", str(self.data_dir))
                    .replace("{tmp}", str(self.tmp)))
            self.config_path = self.tmp / "ternd.conf"
            self.config_path.write_text(text)

    def _ours_listening(self):
        """Our ternd (not whatever else took the port) says it listens on it, and has
        finished starting (it listens only after the journal replay and the spool
        recovery; "started" is its last startup line)."""
        if not is_listening(self.port):
            return False
        log = self.log()
        return (re.search(r"event=listening listener=\S*:%d " % self.port, log) and
                "event=started " in log)

    def argv(self):
        argv = [str(TERND)]
        if self.config_path:
            argv += ["-c", str(self.config_path)]
        if self.listen:
            h = "[%s]" % self.host if ":" in self.host else self.host
            argv += ["--listen", "%s:%d" % (h, self.port)]
        argv += ["--data", str(self.data_dir)]
        return argv + self.args

    def start(self):
        if not TERND.exists():
            pytest.fail("%s not built" % TERND)
        self.starts += 1
        self.stderr_path = self.tmp / ("ternd.%d.log" % self.starts)
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv(), cwd=self.tmp, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ours_listening():
            if self.proc.poll() is not None:
                rc, self.proc = self.proc.returncode, None
                if (self.starts == 1 and not self._port_given and
                        "Address already in use" in self.log() and
                        time.monotonic() < deadline):
                    # free_port() raced with another test suite on this machine:
                    # the port was free when picked, taken when ternd bound it
                    self.port = free_port(self.host)
                    self._write_config()
                    self.starts = 0
                    return self.start()
                pytest.fail("ternd exited with %s before listening; argv %s; output:\n%s"
                            % (rc, self.argv(), self.log()))
            if time.monotonic() > deadline:
                self._kill()
                self.proc = None
                pytest.fail("ternd did not listen on %s:%d within %.0fs; output:\n%s"
                            % (self.host, self.port, START_TIMEOUT, self.log()))
            time.sleep(0.02)
        return self

    def log(self):
        """Everything ternd wrote to stdout/stderr in its latest run."""
        if not self.stderr_path or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    def check_sanitizers(self):
        out = self.log()
        for m in SANITIZER_MARKERS:
            assert m not in out, "sanitizer report in ternd output:\n" + out

    def stop(self, timeout=10.0):
        """SIGTERM; ternd must exit 0 with no sanitizer report."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                pytest.fail("ternd did not exit within %.0fs of SIGTERM; output:\n%s"
                            % (timeout, self.log()))
        rc = self.proc.returncode
        self.proc = None
        assert rc == 0, "ternd exited %d after SIGTERM; output:\n%s" % (rc, self.log())
        self.check_sanitizers()

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self):
        """Start again on the same port and data directory (after stop or kill9)."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        self.proc = None
        return self.start()

    def connect(self, **kw):
        """A raw SMTP connection, greeting already read."""
        c = SMTPConn(self.host, self.port, **kw)
        c.greet()
        return c

    def smtp(self, **kw):
        import smtplib
        return smtplib.SMTP(self.host, self.port, timeout=kw.pop("timeout", 10), **kw)

    def mailbox(self, addr):
        return maildir_new(self.data_dir, addr)

    def wait_mail(self, addr, n=1, timeout=10.0):
        return wait_for_maildir_files(self.mailbox(addr), n, timeout)


@pytest.fixture
def ternd_factory(tmp_path):
    """ternd_factory(config=None, args=(), data_dir=None, listen=True) -> started Ternd.
    Each started ternd is stopped at the end of the test; a clean SIGTERM exit with
    status 0 and no sanitizer report is part of every test."""
    started = []

    def make(config=None, args=(), data_dir=None, listen=True, start=True, **kw):
        sub = tmp_path / ("ternd%d" % len(started))
        t = Ternd(sub, config=config, args=args, data_dir=data_dir, listen=listen, **kw)
        started.append(t)
        return t.start() if start else t

    yield make
    errors = []
    for t in started:
        try:
            t.stop()
        except BaseException as e:  # report every instance, not just the first
            t._kill()
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def ternd(ternd_factory):
    """A ternd with the built-in default configuration."""
    return ternd_factory()


def tern_cli(*args, timeout=10):
    """Run build/tern; returns CompletedProcess with text output."""
    if not TERN.exists():
        pytest.fail("%s not built" % TERN)
    return subprocess.run([str(TERN), *args], capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------------------
# Dovecot


DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

DOVECOT_CONF = """\
# generated by tests/e2e/conftest.py
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
instance_name = tern-test-{port}
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_username_format = %Lu
mail_location = maildir:{mailroot}/%d/%n/Maildir
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
first_valid_gid = {gid}
default_login_user = {login_user}
default_internal_user = {internal_user}
{internal_group}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu {base}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mailroot}/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{login_chroot}}}
{nonroot_services}"""

# Without root, nothing may chroot and every service runs as the current user.
DOVECOT_NONROOT = """\
service anvil {
  chroot =
}
service stats {
  chroot =
}
"""


class Dovecot:
    """A Dovecot IMAP server (run in the foreground by us) reading the Maildirs under
    <data_dir>/mail, where data_dir is a directory to give ternd as --data.

    Run as root, Dovecot refuses mail access as uid 0, so mail is read as `nobody`
    (login/internal processes use the packaged dovenull/dovecot users) and
    grant_access() hands the delivered files to that uid. Run as any other user,
    everything is that user and nothing chroots."""

    def __init__(self):
        # Under /tmp with mode 0755 so the unprivileged imap process can reach the
        # Maildirs (pytest's own tmp dirs are 0700 root).
        self.base = Path(tempfile.mkdtemp(prefix="tern-dovecot-"))
        os.chmod(self.base, 0o755)
        self.data_dir = self.base / "var"
        self.data_dir.mkdir()
        os.chmod(self.data_dir, 0o755)
        self.mailroot = self.data_dir / "mail"
        self.port = free_port()
        self.users = {}
        self.proc = None
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.uid, self.gid = nobody.pw_uid, nobody.pw_gid
            login = "dovenull" if _user_exists("dovenull") else "nobody"
            internal = "dovecot" if _user_exists("dovecot") else "nobody"
            login_chroot = "  chroot = login\n"
            internal_group = ""
            nonroot = ""
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
            login = internal = pwd.getpwuid(self.uid).pw_name
            login_chroot = "  chroot =\n"
            internal_group = "default_internal_group = %s\n" % grp.getgrgid(self.gid).gr_name
            nonroot = DOVECOT_NONROOT
        self.conf = self.base / "dovecot.conf"
        self.conf.write_text(DOVECOT_CONF.format(
            base=self.base, port=self.port, mailroot=self.mailroot, uid=self.uid,
            gid=self.gid, login_user=login, internal_user=internal,
            login_chroot=login_chroot, internal_group=internal_group,
            nonroot_services=nonroot))
        (self.base / "passwd").write_text("")

    def add_user(self, addr, password):
        self.users[addr.lower()] = password
        p = self.base / "passwd"
        p.write_text("".join("%s:{PLAIN}%s::::::\n" % (u, pw) for u, pw in self.users.items()))
        os.chmod(p, 0o644)

    def grant_access(self):
        """Give the Maildirs to the uid Dovecot reads mail as (only needed as root:
        ternd, running as root here, created them)."""
        if os.geteuid() != 0 or not self.mailroot.exists():
            return
        for dirpath, dirnames, filenames in os.walk(self.mailroot):
            os.chown(dirpath, self.uid, self.gid)
            for n in filenames:
                os.chown(os.path.join(dirpath, n), self.uid, self.gid)

    def start(self):
        self.log_path = self.base / "dovecot.out"
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        deadline = time.monotonic() + START_TIMEOUT
        while not is_listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("dovecot did not start on port %d:\n%s" % (self.port, self.log()))
            time.sleep(0.05)
        return self

    def log(self):
        out = []
        for n in ("dovecot.out", "dovecot.log"):
            p = self.base / n
            if p.exists():
                out.append(p.read_text(errors="replace"))
        return "\n".join(out)

    def imap(self, addr, password=None):
        """A logged-in imaplib client for addr."""
        import imaplib
        self.grant_access()
        m = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        m.login(addr, password if password is not None else self.users[addr.lower()])
        return m

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def _user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture
def dovecot():
    """A started Dovecot; dovecot.data_dir is the directory to give ternd as --data."""
    if not os.path.exists(DOVECOT):
        pytest.skip("dovecot not installed (scripts/deps.sh installs dovecot-imapd)")
    d = Dovecot()
    try:
        yield d.start()
    finally:
        d.cleanup()


def need_tool(name):
    path = shutil.which(name)
    if not path:
        pytest.skip("%s not installed (scripts/deps.sh installs it)" % name)
    return path
