#!/bin/sh
# setup.sh - install what the benchmark needs (Postfix for smtp-source, smtp-sink and
# the comparison server) without leaving a system mail server running.
#
# debconf is told "No configuration", so the package writes no main.cf and the
# system instance cannot start; if a postfix master runs anyway (an old install),
# it is stopped by its PID. The benchmark runs its own private instance
# (bench/bench.py, `postfix -c DIR`). Nothing here touches port 25 afterwards.
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v smtp-source >/dev/null 2>&1 || ! command -v postfix >/dev/null 2>&1; then
	echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix
fi
pidfile=/var/spool/postfix/pid/master.pid
if [ -f "$pidfile" ]; then
	pid=$(tr -d ' \n' < "$pidfile")
	if [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -q master "/proc/$pid/comm"; then
		echo "setup.sh: stopping the system postfix master (pid $pid)"
		$SUDO kill "$pid"
	fi
fi
if ss -ltn 2>/dev/null | awk '{print $4}' | grep -Eq '(^|:)25$'; then
	echo "setup.sh: warning: something listens on port 25" >&2
fi
