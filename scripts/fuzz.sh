#!/bin/sh
# fuzz.sh SECONDS [TARGET...] - run libFuzzer targets built by `make fuzz-build`
# (build-fuzz/<name>_fuzz, clang -fsanitize=fuzzer,address,undefined) for SECONDS
# each. Each works on build-fuzz/corpus/<name>/ seeded from fuzz/corpus/<name>/ (the
# repository corpus is read, never written). Prints, per target, the executions,
# the coverage (cov = edges, ft = features) and the corpus size reached; exits
# non-zero if any target found a crash, leak, timeout or sanitizer report (the
# reproducer is build-fuzz/<name>-crash-*).
secs=${1:-300}
shift
targets=$*
[ -n "$targets" ] || targets=$(cd build-fuzz && ls *_fuzz 2>/dev/null | sed 's/_fuzz$//')
fail=0
for t in $targets; do
	bin=build-fuzz/${t}_fuzz
	work=build-fuzz/corpus/$t
	log=build-fuzz/$t.log
	mkdir -p "$work"
	[ -d "fuzz/corpus/$t" ] && cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null
	"$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
		-max_len=8192 -artifact_prefix=build-fuzz/"$t"- "$work" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	last=$(grep -E '^#[0-9]+' "$log" | tail -1)
	cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
	corp=$(ls "$work" | wc -l)
	if [ "$rc" -eq 0 ]; then
		printf 'ok    %-12s %4ss  execs=%s cov=%s ft=%s corpus=%s\n' "$t" "$secs" "$execs" "$cov" "$ft" "$corp"
	else
		fail=1
		printf 'FAIL  %-12s exit %s, see %s\n' "$t" "$rc" "$log"
		grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -5
	fi
done
exit $fail
