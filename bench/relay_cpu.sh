#!/bin/bash
# relay_cpu.sh - two ternd builds side by side, relaying to smtp-sink: ternd's CPU
# per message (user+sys) and the rate until its queue is empty. A benchmark, not a
# test: it prints figures. Loopback only; it ends only the processes it started.
#
#   bench/relay_cpu.sh TERND_A TERND_B [SESSIONS [MSGS [REPS [SIZE]]]]
#
# Each ternd gets its own directory (chattr +T, as bench.py does), trusted_networks
# 127.0.0.0/8 and `transport = remote.test 127.0.0.1:PORT` to one smtp-sink; then
# `smtp-source -s SESSIONS -m MSGS -l SIZE` to user@remote.test against A, then B,
# REPS times. smtp-sink is slow with big messages (~20 msg/s at 10 MiB here), so the
# rate mostly shows smtp-sink; the CPU column is the figure to read.
set -eu
A=$1
B=$2
ses=${3:-10}
msgs=${4:-40}
reps=${5:-3}
size=${6:-10485760}
command -v smtp-source >/dev/null || { echo "smtp-source missing (bench/setup.sh)" >&2; exit 1; }
top=$(mktemp -d /var/tmp/tern-relay.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$top"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sinkport=$(free_port)
smtp-sink -u nobody -c "127.0.0.1:$sinkport" 1000 >/dev/null 2>&1 &
pids+=($!)
declare -A port pid dir
for x in A B; do
	bin=$A
	[ "$x" = B ] && bin=$B
	dir[$x]=$top/$x
	mkdir -p "${dir[$x]}"
	chattr +T "${dir[$x]}" 2>/dev/null || true
	port[$x]=$(free_port)
	cat >"${dir[$x]}/ternd.conf" <<EOC
hostname = bench.localdomain
data_dir = ${dir[$x]}/var
local_domains = bench.test
trusted_networks = 127.0.0.0/8
transport = remote.test 127.0.0.1:$sinkport
max_connections = 2000
max_connections_per_ip = 2000
[listener 127.0.0.1:${port[$x]}]
EOC
	"$bin" -c "${dir[$x]}/ternd.conf" >"${dir[$x]}/log" 2>&1 &
	pid[$x]=$!
	pids+=(${pid[$x]})
done
sleep 1
queued() { find "$1/var/spool/queue" "$1/var/spool/incoming" -type f 2>/dev/null | wc -l; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
for x in A B; do # warm-up
	smtp-source -s "$ses" -m "$ses" -l "$size" -f bench@client.test -t user@remote.test \
		-M client.test "127.0.0.1:${port[$x]}"
done
sleep 2
echo "# relay_cpu: $ses sessions, $msgs messages of $size octets, $reps repetitions"
echo "| build | rep | ternd CPU ms/msg | msg/s until the queue is empty |"
echo "|---|---|---|---|"
for r in $(seq "$reps"); do
	for x in A B; do
		c1=$(cpu "${pid[$x]}")
		s=$(date +%s.%N)
		smtp-source -s "$ses" -m "$msgs" -l "$size" -f bench@client.test -t user@remote.test \
			-M client.test "127.0.0.1:${port[$x]}"
		for _ in $(seq 1200); do
			[ "$(queued "${dir[$x]}")" -eq 0 ] && break
			sleep 0.05
		done
		left=$(queued "${dir[$x]}")
		e=$(date +%s.%N)
		c2=$(cpu "${pid[$x]}")
		bin=$A
		[ "$x" = B ] && bin=$B
		printf '| %s | %d | %s | %s%s |\n' "$x ($bin)" "$r" \
			"$(echo "scale=2; ($c2 - $c1) * 1000 / $tck / $msgs" | bc)" \
			"$(echo "scale=1; $msgs / ($e - $s)" | bc)" \
			"$([ "$left" -eq 0 ] || echo " ($left still queued)")"
	done
done
