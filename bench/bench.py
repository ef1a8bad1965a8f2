#!/usr/bin/env python3
"""bench.py - durable SMTP throughput and idle-session memory: ternd against a
private Postfix instance and smtp-sink, driven by smtp-source (all from the Debian
postfix package), side by side in one run.

What it does: starts the three servers on loopback ports in a temporary directory
(Postfix with its own `postfix -c DIR` config, queue and virtual(8) Maildir
delivery; ternd with a comparable config; smtp-sink storing nothing), runs
smtp-source against each in alternation with identical parameters, waits until
every message is in the Maildir (counting files: nothing may be missing), and
prints the tables of bench/README.md. Then it opens N idle sessions against each
and reads the memory the server gained.

What it does not do: install anything (bench/setup.sh does), judge the figures, or
fail on a timing. It exits non-zero only when something is broken (a server does
not start, a message is lost).

Every process it starts is ended by its PID (Postfix by `postfix stop`).
"""

import argparse
import os
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
DOMAIN = "bench.test"
RCPT = "user@" + DOMAIN
# --relay: mail to this domain is relayed by Postfix and ternd to a downstream
# smtp-sink (the next hop), instead of delivered into a Maildir
RELAY_DOMAIN = "remote.test"
RELAY = None  # the Downstream sink, with --relay


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.recv(512)
                s.sendall(b"QUIT\r\n")
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing answers on port %d" % port)


def proc_stat(pid):
    """(utime+stime, cutime+cstime) in seconds, ppid."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    ppid = int(fields[1])
    own = (int(fields[11]) + int(fields[12])) / CLK
    kids = (int(fields[13]) + int(fields[14])) / CLK
    return own, kids, ppid


def tree(root):
    """root and its descendants (by /proc ppid)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            _, _, ppid = proc_stat(int(d))
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_of(root):
    """CPU seconds used by root's process tree: its own time, its reaped children's,
    and every live descendant's. Differences of two readings are exact even when
    children exit in between (their time moves into the parent's cutime)."""
    total = 0.0
    for p in tree(root):
        try:
            own, kids, _ = proc_stat(p)
        except OSError:
            continue
        total += own + kids
    return total


def mem_of(root):
    """(RSS, PSS) in bytes summed over root's process tree (smaps_rollup)."""
    rss = pss = 0
    for p in tree(root):
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, pss


def count_files(d):
    try:
        return sum(1 for _ in os.scandir(d))
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------------------
# servers


def end(p, timeout):
    """SIGTERM to a process we started, SIGKILL if it has not gone after timeout s."""
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def delivered_count(maildir):
    """Messages delivered so far: files in the Maildir, or with --relay the count of
    the next hop (the Downstream sink)."""
    return count_files(maildir) if RELAY is None else RELAY.count()


class Sink:
    name = "smtp-sink"
    delivers = False
    counts = False  # -c: running counters on stdout (Downstream)

    def __init__(self, top=None):
        self.port = free_port()
        self.p = subprocess.Popen(
            ["smtp-sink", "-u", "nobody"] + (["-c"] if self.counts else []) +
            ["-m", "20000", "127.0.0.1:%d" % self.port, "4096"],
            stdout=subprocess.PIPE if self.counts else subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        self.pid = self.p.pid
        if self.counts:
            threading.Thread(target=self._read, daemon=True).start()
        wait_port(self.port)

    def delivered(self):
        return None

    def stop(self):
        end(self.p, 10)


class Downstream(Sink):
    """With --relay: the next hop Postfix and ternd relay to, an smtp-sink of its
    own that counts what it received (-c prints its counters at each message)."""
    counts = True
    n = 0

    def _read(self):
        buf = b""
        while True:
            data = self.p.stdout.read1(65536)
            if not data:
                return
            *done, buf = (buf + data).split(b"\r")
            for rec in done:  # "sess=N quit=N mesg=N", counters only grow
                for kv in rec.split():
                    if kv.startswith(b"mesg="):
                        self.n = int(kv[5:])

    def count(self):
        return self.n


class Ternd:
    name = "ternd"
    delivers = True

    def __init__(self, top, binary, extra_conf="", name="ternd", env=None):
        self.name = name
        self.dir = Path(top) / name
        server_dir(self.dir)
        self.port = free_port()
        conf = self.dir / "ternd.conf"
        conf.write_text(
            "hostname = bench.localdomain\n"
            "data_dir = %s\n"
            "local_domains = %s\n"
            "max_connections = 20000\n"
            "max_connections_per_ip = 20000\n"
            "%s%s"
            "[listener 127.0.0.1:%d]\n" % (
                self.dir / "var", DOMAIN, extra_conf,
                "" if RELAY is None else "trusted_networks = 127.0.0.0/8\n"
                "transport = %s 127.0.0.1:%d\n" % (RELAY_DOMAIN, RELAY.port), self.port))
        self.log = open(self.dir / "ternd.log", "w")
        self.p = subprocess.Popen([str(binary), "-c", str(conf)], stdout=self.log,
                                  stderr=self.log, env=dict(os.environ, **(env or {})))
        wait_port(self.port)
        self.pid = self.p.pid
        self.maildir = self.dir / "var" / "mail" / DOMAIN / "user" / "Maildir" / "new"

    def delivered(self):
        return delivered_count(self.maildir)

    def stop(self):
        end(self.p, 30)
        self.log.close()


POSTFIX_MAIN = """\
compatibility_level = 3.6
config_directory = {d}/etc
queue_directory = {d}/queue
data_directory = {d}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/maillog
myhostname = bench.localdomain
mydomain = localdomain
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = static:{domain}/user/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
smtputf8_enable = no
biff = no
append_dot_mydomain = no
default_process_limit = {procs}
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
anvil_rate_time_unit = 60s
message_size_limit = 104857600
virtual_mailbox_limit = 0
{relay}"""

POSTFIX_MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class Postfix:
    name = "postfix"
    delivers = True

    def __init__(self, top, procs=200):
        import pwd
        pw = pwd.getpwnam("postfix")
        self.dir = Path(top) / "postfix"
        server_dir(self.dir)
        for sub in ("etc", "queue", "data", "mail"):
            (self.dir / sub).mkdir(parents=True)
        os.chown(self.dir / "data", pw.pw_uid, pw.pw_gid)
        os.chown(self.dir / "mail", pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        (self.dir / "etc" / "main.cf").write_text(POSTFIX_MAIN.format(
            d=self.dir, domain=DOMAIN, uid=pw.pw_uid, gid=pw.pw_gid, procs=procs,
            relay="" if RELAY is None else
            "relay_domains = %s\ntransport_maps = inline:{ %s=smtp:[127.0.0.1]:%d }\n" % (
                RELAY_DOMAIN, RELAY_DOMAIN, RELAY.port)))
        (self.dir / "etc" / "master.cf").write_text(POSTFIX_MASTER.format(port=self.port))
        self.env = dict(os.environ, MAIL_CONFIG=str(self.dir / "etc"))
        self.ctl("start")
        pidfile = self.dir / "queue" / "pid" / "master.pid"
        deadline = time.monotonic() + 20
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pid = int(pidfile.read_text().split()[0])
        wait_port(self.port)
        self.maildir = self.dir / "mail" / DOMAIN / "user" / "new"

    def ctl(self, what):
        r = subprocess.run(["postfix", "-c", str(self.dir / "etc"), what], env=self.env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("postfix %s: %s%s" % (what, r.stdout, r.stderr))

    def delivered(self):
        return delivered_count(self.maildir)

    def stop(self):
        try:
            self.ctl("stop")
        except RuntimeError as e:
            print("warning:", e, file=sys.stderr)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(self.pid, signal.SIGKILL)


# ---------------------------------------------------------------------------
# throughput


SETTLE = False  # --settle
ISOLATE = True  # --no-isolate


def server_dir(path):
    """Make a server's own directory, marked as the top of a directory hierarchy
    (chattr +T, EXT4_TOPDIR_FL): ext4's Orlov allocator then spreads its
    subdirectories over other block groups, so each server's files live apart from
    the other servers', as on separate filesystems. Without it every server's files
    share the groups of the benchmark's temp directory, and on ext4 without a journal
    (this VM) a new inode skips every inode of its group freed in the last 60-360 s:
    a server then pays for the queue files the server before it deleted (Postfix
    deletes one per message). Each server still pays for its own deletions."""
    path.mkdir()
    if ISOLATE:
        r = subprocess.run(["chattr", "+T", str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            print("warning: chattr +T %s: %s" % (path, (r.stderr or r.stdout).strip()),
                  file=sys.stderr)


def rotated(servers, rep):
    """The servers in the order of repetition rep: each repetition starts one server
    later, so no server always runs right after the same one. Measured with two
    identical builds in alternation, the one running first in each pair was about
    4 % ahead (bench/RESULTS.md run K); a fixed order turns that into a bias."""
    k = rep % len(servers) if servers else 0
    return servers[k:] + servers[:k]


def drop_clean_cache():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
    except OSError as e:
        print("warning: drop_caches:", e, file=sys.stderr)


def settle_start():
    """Once, before the warm-up: write back and drop the clean page cache, whatever
    --settle says. Files an earlier benchmark (or anything else) removed in the last
    minutes would otherwise slow every new inode on this VM's journal-less ext4
    (recently_deleted(), see settle()): measured, 0.29 instead of 0.16 ms of ternd's
    CPU per message at 4 KiB x 10 sessions in a run started right after another
    (bench/RESULTS.md, "The two levels ... explained"). The warm-up round then fills
    the caches again, so the measured runs do not start cold."""
    drop_clean_cache()


def settle():
    """Before a measured run: write back what earlier runs left dirty and drop the
    clean page cache, so every run starts from the same state whichever server ran
    before it. On ext4 without a journal (this VM's root) a new inode skips every
    inode freed in the last 60 s whose inode-table block is still cached (360 s while
    dirty: recently_deleted() in fs/ext4/ialloc.c); without this step one server pays
    for the queue files the server before it deleted (Postfix deletes one per
    message) and for the directories earlier benchmarks removed."""
    if not SETTLE:
        return
    drop_clean_cache()


def run_load(srv, sessions, size, msgs, timeout):
    """One smtp-source run; returns a dict of figures."""
    base = srv.delivered()
    cpu0 = cpu_of(srv.pid)
    t0 = time.monotonic()
    r = subprocess.run(
        ["smtp-source", "-s", str(sessions), "-m", str(msgs), "-l", str(size),
         "-f", "bench@client.test", "-t", RCPT, "-M", "client.test",
         "127.0.0.1:%d" % srv.port],
        capture_output=True, text=True)
    t1 = time.monotonic()
    errors = (r.stdout + r.stderr).strip()
    res = {"accepted": msgs / (t1 - t0), "errors": errors, "rc": r.returncode}
    if srv.delivers:
        want = base + msgs
        deadline = t1 + timeout
        n = srv.delivered()
        while n < want and time.monotonic() < deadline:
            time.sleep(0.005)
            n = srv.delivered()
        t2 = time.monotonic()
        res["missing"] = want - n
        res["delivered"] = msgs / (t2 - t0) if n >= want else 0.0
    cpu1 = cpu_of(srv.pid)
    res["cpu_ms"] = (cpu1 - cpu0) * 1000.0 / msgs
    return res


def run_latency(srv, binary, sessions, per_session, size):
    """End-of-data -> 250 latency with persistent sessions (bench/smtp_latency.c)."""
    base = srv.delivered()
    msgs = sessions * per_session
    cpu0 = cpu_of(srv.pid)
    r = subprocess.run([str(binary), "127.0.0.1", str(srv.port), str(sessions),
                        str(per_session), str(size), RCPT], capture_output=True, text=True)
    res = dict(kv.split("=") for kv in r.stdout.split())
    res = {k: float(v) for k, v in res.items()}
    if srv.delivers:
        deadline = time.monotonic() + 600
        while srv.delivered() < base + msgs and time.monotonic() < deadline:
            time.sleep(0.005)
        res["missing"] = base + msgs - srv.delivered()
    res["cpu_ms"] = (cpu_of(srv.pid) - cpu0) * 1000.0 / max(res.get("msgs", 1), 1)
    res["rate"] = res["msgs"] / res["secs"] if res.get("secs") else 0.0
    res["stderr"] = r.stderr.strip()
    return res


def latency(servers, binary, sessions, per_session, size, reps):
    print("| server | sessions | msgs | accepted msg/s | end-of-data -> 250: p50 | p90 "
          "| p99 | max | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = {}
    ok = True
    for rep in range(reps):
        for srv in rotated(servers, rep):
            settle()
            r = run_latency(srv, binary, sessions, per_session, size)
            rows.setdefault(srv.name, []).append(r)
            if r.get("errors") or r.get("missing"):
                ok = False
    for srv in servers:
        rs = rows[srv.name]
        med = lambda k: statistics.median([r.get(k, 0.0) for r in rs])
        print("| %s | %d | %d | %.0f | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %d |" % (
            srv.name, sessions, sessions * per_session, med("rate"), med("p50_ms"),
            med("p90_ms"), med("p99_ms"), med("max_ms"),
            sum(int(r.get("errors", 0)) + int(r.get("missing", 0) or 0) for r in rs)))
    print()
    return ok


def fmt_range(vals, digits=0):
    if not vals:
        return "-"
    med = statistics.median(vals)
    f = "%%.%df" % digits
    if len(vals) == 1:
        return f % med
    return (f + " (" + f + "–" + f + ")") % (med, min(vals), max(vals))


# ---------------------------------------------------------------------------
# idle sessions


def open_idle(port, n):
    """Open n connections, read each greeting; return the sockets (kept open)."""
    socks, sel = [], selectors.DefaultSelector()
    pending = {}
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
        pending[s.fileno()] = b""
        sel.register(s, selectors.EVENT_READ)
        # do not let the listen backlog overflow: drain greetings as we go
        if i % 200 == 199:
            drain(sel, pending, 0.0)
    deadline = time.monotonic() + 120
    while pending and time.monotonic() < deadline:
        drain(sel, pending, 0.5)
    sel.close()
    return socks, len(pending)


def drain(sel, pending, timeout):
    for key, _ in sel.select(timeout):
        s = key.fileobj
        try:
            data = s.recv(512)
        except OSError:
            data = b""
        buf = pending.get(s.fileno(), b"") + data
        if b"\r\n" in buf or not data:
            pending.pop(s.fileno(), None)
            sel.unregister(s)
        else:
            pending[s.fileno()] = buf


def idle_memory(srv, n):
    rss0, pss0 = mem_of(srv.pid)
    t0 = time.monotonic()
    socks, missing = open_idle(srv.port, n)
    time.sleep(1.0)
    rss1, pss1 = mem_of(srv.pid)
    dt = time.monotonic() - t0
    for s in socks:
        s.close()
    return {"n": n, "missing": missing, "rss": rss1 - rss0, "pss": pss1 - pss0,
            "rss_total": rss1, "secs": dt}


# ---------------------------------------------------------------------------


LOADS = {
    "quick": [(10, 4096, 1000), (50, 4096, 1000), (10, 102400, 300)],
    "standard": [(10, 4096, 2000), (50, 4096, 2000), (10, 102400, 1000)],
    # the grid of issue 4: 1/10/50/200 sessions x 4 KiB/100 KiB/10 MiB
    "scaling": [(1, 4096, 500), (10, 4096, 2000), (50, 4096, 3000), (200, 4096, 3000),
                (1, 102400, 200), (10, 102400, 1000), (50, 102400, 1000), (200, 102400, 1000),
                (1, 10485760, 10), (10, 10485760, 40), (50, 10485760, 100),
                (200, 10485760, 200)],
    # the grid's 10 MiB rows alone (messages that take the syncfs path)
    "large": [(1, 10485760, 10), (10, 10485760, 40), (50, 10485760, 100),
              (200, 10485760, 200)],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ternd", default=str(REPO / "build-bench" / "ternd"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--loads", default="standard", choices=sorted(LOADS))
    ap.add_argument("--servers", default="postfix,ternd,smtp-sink")
    ap.add_argument("--idle", type=int, default=10000, help="idle sessions (0: skip)")
    ap.add_argument("--idle-postfix", type=int, default=1000,
                    help="idle sessions for Postfix (one process each)")
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument("--latency-sessions", type=int, default=50,
                    help="sessions for the latency table (0: skip)")
    ap.add_argument("--latency-binary", default=str(REPO / "build-bench" / "smtp_latency"))
    ap.add_argument("--runs", action="store_true", help="print every run's figures")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    ap.add_argument("--no-isolate", action="store_true",
                    help="do not mark each server's directory chattr +T (see server_dir())")
    ap.add_argument("--settle", action="store_true",
                    help="sync and drop the clean page cache before each measured run")
    ap.add_argument("--relay", action="store_true",
                    help="mail to %s, relayed by Postfix and ternd to a downstream "
                    "smtp-sink (delivered = received there), instead of Maildir "
                    "delivery" % RELAY_DOMAIN)
    args = ap.parse_args()
    global SETTLE, ISOLATE, RELAY, RCPT
    SETTLE = args.settle
    ISOLATE = not args.no_isolate

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if os.geteuid() != 0:
        sys.exit("bench.py: run as root (Postfix needs it); see bench/README.md")
    for prog in ("smtp-source", "smtp-sink", "postfix"):
        if shutil.which(prog) is None:
            sys.exit("bench.py: %s missing: run bench/setup.sh" % prog)

    top = tempfile.mkdtemp(prefix="tern-bench-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    os.chmod(top, 0o755)
    wanted = args.servers.split(",")
    servers = []
    ok = True
    try:
        if args.relay:
            RELAY = Downstream()
            RCPT = "user@" + RELAY_DOMAIN
        for name in wanted:
            if name == "postfix":
                servers.append(Postfix(top, procs=max(300, args.idle_postfix + 100)))
            elif name == "ternd":
                servers.append(Ternd(top, args.ternd))
            elif name == "ternd-relaxed":  # durability = relaxed: not the headline
                servers.append(Ternd(top, args.ternd, extra_conf="durability = relaxed\n",
                                     name=name))
            elif name.startswith("ternd@"):  # ternd@PATH: another build, for A/B runs
                t = Ternd(top, name[6:], name="ternd-ref%d" % len(servers))
                t.name = "ternd@" + name[6:]
                servers.append(t)
            elif name.startswith("ternd:"):  # ternd:VAR=value, for experiments
                k, _, v = name[6:].partition("=")
                servers.append(Ternd(top, args.ternd, name=name, env={k: v}))
            elif name == "smtp-sink":
                servers.append(Sink(top))
        print("# tern benchmark, %s, %s, %d CPUs, load average %s" % (
            time.strftime("%Y-%m-%d %H:%M"), os.uname().release, os.cpu_count(),
            open("/proc/loadavg").read().split()[0]))
        print("# smtp-source -s SESSIONS -m MSGS -l SIZE (one message per connection), "
              "%d repetitions, servers in alternation (each repetition, and each load, "
              "starts one server later); median (min–max)" % args.reps)
        print("# each server's directory: %s" % (
            "chattr +T, its own block groups (bench.py server_dir())" if ISOLATE
            else "in the shared temp directory (--no-isolate)"))
        if RELAY is not None:
            print("# --relay: mail to %s, relayed by Postfix (transport_maps) and ternd "
                  "(transport) to a downstream smtp-sink on 127.0.0.1:%d; delivered = "
                  "received by it" % (RCPT, RELAY.port))
        print("# before each measured run: %s" % (
            "sync, then drop the clean page cache (bench.py settle())" if SETTLE
            else "nothing (see --settle); before the warm-up: the same, once "
            "(bench.py settle_start())"))
        settle_start()
        if not args.no_throughput:
            ok = throughput(servers, LOADS[args.loads], args.reps, args.runs) and ok
        if args.latency_sessions and os.path.exists(args.latency_binary):
            print("# latency: %s SESSIONS 40 4096 (persistent sessions, no pipelining, "
                  "%d repetitions, medians)" % (os.path.basename(args.latency_binary), args.reps))
            ok = latency(servers, args.latency_binary, args.latency_sessions, 40, 4096,
                         args.reps) and ok
        if args.idle:
            idle(servers, args.idle, args.idle_postfix)
        print("# load average at the end: %s" % open("/proc/loadavg").read().split()[0])
    finally:
        for s in servers:
            s.stop()
        if RELAY is not None:
            RELAY.stop()
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)
        else:
            print("# kept", top)
    sys.exit(0 if ok else 1)


def throughput(servers, loads, reps, show_runs=False):
    ok = True
    results = {}
    # One unmeasured round per server first: Postfix spawns its processes, ternd
    # creates its Maildirs and sizes its journal, every cache is warm.
    sessions, size, msgs = loads[0]
    for srv in servers:
        run_load(srv, sessions, size, max(msgs // 2, 1), timeout=600)
    for li, (sessions, size, msgs) in enumerate(loads):
        for rep in range(reps):
            # rep + li: with fewer repetitions than servers (--reps 1), the server
            # that goes first still changes from one load to the next
            for srv in rotated(servers, rep + li):
                settle()
                r = run_load(srv, sessions, size, msgs, timeout=600)
                if show_runs:
                    print("# run %s s=%d l=%d rep %d: accepted %.0f delivered %.0f" % (
                        srv.name, sessions, size, rep + 1, r["accepted"],
                        r.get("delivered", 0.0)))
                results.setdefault((sessions, size, srv.name), []).append(r)
                if r["errors"] or r.get("missing"):
                    ok = False
                    print("! %s s=%d l=%d: missing=%s %s" % (
                        srv.name, sessions, size, r.get("missing"), r["errors"][:300]))
                sys.stdout.flush()
    print()
    print("| load | server | accepted msg/s | delivered msg/s (%s) " % (
        "fsynced, in the Maildir" if RELAY is None else "received by the next hop") +
          "| CPU ms/msg | delivered × Postfix | delivered ÷ smtp-sink accepted |")
    print("|---|---|---|---|---|---|---|")
    for sessions, size, msgs in loads:
        load = "%s, %d sessions, %d msgs" % (human(size), sessions, msgs)
        pf = results.get((sessions, size, "postfix"))
        sk = results.get((sessions, size, "smtp-sink"))
        pf_med = statistics.median([r["delivered"] for r in pf]) if pf else None
        sk_med = statistics.median([r["accepted"] for r in sk]) if sk else None
        for srv in servers:
            rs = results[(sessions, size, srv.name)]
            acc = [r["accepted"] for r in rs]
            dl = [r["delivered"] for r in rs] if srv.delivers else []
            cpu = [r["cpu_ms"] for r in rs]
            d_med = statistics.median(dl) if dl else None
            x_pf = "%.1f×" % (d_med / pf_med) if d_med and pf_med else "-"
            x_sk = "%.0f %%" % (100 * d_med / sk_med) if d_med and sk_med else "-"
            print("| %s | %s | %s | %s | %s | %s | %s |" % (
                load, srv.name, fmt_range(acc), fmt_range(dl) if dl else "- (stores nothing)",
                fmt_range(cpu, 2), x_pf, x_sk))
    print()
    # the same medians as a grid: one row per load, one column per server
    names = [srv.name for srv in servers]
    print("| size | sessions | " + " | ".join(
        "%s %s/s" % (n, "accepted" if n == "smtp-sink" else "delivered") for n in names) +
        " | ternd MB/s delivered |")
    print("|---|---|" + "---|" * len(names) + "---|")
    for sessions, size, msgs in loads:
        cells, mbs = [], "-"
        for srv in servers:
            rs = results[(sessions, size, srv.name)]
            key = "delivered" if srv.delivers else "accepted"
            med = statistics.median([r[key] for r in rs])
            cells.append("%.0f" % med)
            if srv.name == "ternd":
                mbs = "%.1f" % (med * size / 1e6)
        print("| %s | %d | %s | %s |" % (human(size), sessions, " | ".join(cells), mbs))
    print()
    return ok


def idle(servers, n, n_postfix):
    print("| server | idle sessions open | RSS added | per session (RSS) "
          "| per session (PSS) | server RSS total |")
    print("|---|---|---|---|---|---|")
    for srv in servers:
        k = n_postfix if srv.name == "postfix" else n
        r = idle_memory(srv, k)
        opened = k - r["missing"]
        print("| %s | %d%s | %.1f MiB | %.1f KiB | %.1f KiB | %.1f MiB |" % (
            srv.name, opened, "" if not r["missing"] else " (%d not greeted)" % r["missing"],
            r["rss"] / 2**20, r["rss"] / 1024 / max(opened, 1),
            r["pss"] / 1024 / max(opened, 1), r["rss_total"] / 2**20))
        sys.stdout.flush()
        time.sleep(2.0)
    print()


def human(size):
    if size >= 2**20:
        return "%d MiB" % (size // 2**20)
    if size >= 1024:
        return "%d KiB" % (size // 1024)
    return "%d B" % size


if __name__ == "__main__":
    main()
