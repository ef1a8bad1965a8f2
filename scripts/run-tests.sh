#!/usr/bin/env bash
# run-tests.sh - run every test that `make all unit asan` built, then the end-to-end
# suite against both builds, and end with one line: "N passed, N failed[, N skipped]".
#
#   unit tests   build/tests/*, build-asan/tests/*   (cmocka; counted per test case)
#   fuzz replay  build{,-asan}/fuzz/X_fuzz fuzz/corpus/X/   (one count per target)
#   end-to-end   tests/e2e with TERN_BUILD=build, then TERN_BUILD=build-asan (pytest)
#
# Exit status: 0 only if nothing failed and at least one test ran.
# It does not build anything: `make test` builds first, then calls this.
# Arguments are passed to pytest (e.g. `scripts/run-tests.sh -k dovecot`).
set -uo pipefail
cd "$(dirname "$0")/.."

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
PYTHON=${PYTHON:-/usr/bin/python3}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-300}
E2E_TIMEOUT=${E2E_TIMEOUT:-1800}

PYTEST_ARGS=("$@")
passed=0
failed=0
skipped=0
failures=()

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

note_fail() { failed=$((failed + $1)); failures+=("$2"); }

# A cmocka binary: count its "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)"
# lines. A crash or non-zero exit with no FAILED line still counts as one failure.
run_unit() {
	local bin=$1 out=$tmp/out rc p f
	timeout "$UNIT_TIMEOUT" "$bin" >"$out" 2>&1
	rc=$?
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]\+\) test.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]\+\) test.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	passed=$((passed + p))
	if [ "$f" -gt 0 ]; then
		cat "$out"
		note_fail "$f" "$bin (exit $rc)"
		printf 'FAIL  %-40s %d passed, %d failed\n' "$bin" "$p" "$f"
	else
		printf 'ok    %-40s %d passed\n' "$bin" "$p"
	fi
}

# A fuzz target built as a replay program: feed it every file of its corpus.
run_fuzz() {
	local bin=$1 name corpus out=$tmp/out rc
	name=$(basename "$bin")
	corpus=fuzz/corpus/${name%_fuzz}
	[ -d "$corpus" ] || corpus=fuzz/corpus/$name
	if [ ! -d "$corpus" ]; then
		printf 'skip  %-40s no corpus\n' "$bin"
		return
	fi
	timeout "$UNIT_TIMEOUT" "$bin" "$corpus"/ >"$out" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		printf 'ok    %-40s corpus %s\n' "$bin" "$corpus"
	else
		cat "$out"
		note_fail 1 "$bin $corpus (exit $rc)"
		printf 'FAIL  %-40s corpus %s (exit %d)\n' "$bin" "$corpus" "$rc"
	fi
}

# pytest on tests/e2e against one build; counts come from its junit xml.
run_e2e() {
	local build=$1 xml=$tmp/e2e-$1.xml rc counts p f s
	echo "== e2e against $build/ternd"
	TERN_BUILD=$build timeout "$E2E_TIMEOUT" "$PYTHON" -m pytest tests/e2e -q -rfEs --tb=short \
		-p no:cacheprovider --junitxml="$xml" "${PYTEST_ARGS[@]}"
	rc=$?
	if [ ! -s "$xml" ]; then
		note_fail 1 "pytest with TERN_BUILD=$build (exit $rc, no report)"
		return
	fi
	counts=$("$PYTHON" - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
# One verdict per test case: a test that failed and also errored at teardown
# counts once, as failed.
p = f = s = 0
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    tags = {child.tag for child in case}
    if tags & {"failure", "error"}:
        f += 1
    elif "skipped" in tags:
        s += 1
    else:
        p += 1
print(p, f, s)
PY
)
	read -r p f s <<<"$counts"
	passed=$((passed + p))
	skipped=$((skipped + s))
	[ "$f" -gt 0 ] && note_fail "$f" "e2e with TERN_BUILD=$build: $f failed"
	# pytest exit 0 = all passed, 1 = some failed, 5 = nothing collected.
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ] && [ "$rc" -ne 5 ]; then
		note_fail 1 "pytest with TERN_BUILD=$build exited $rc"
	elif [ "$rc" -eq 1 ] && [ "$f" -eq 0 ]; then
		note_fail 1 "pytest with TERN_BUILD=$build exited 1"
	fi
}

echo "== unit tests"
for dir in build/tests build-asan/tests; do
	[ -d "$dir" ] || continue
	for bin in "$dir"/*; do
		[ -f "$bin" ] && [ -x "$bin" ] && run_unit "$bin"
	done
done

echo "== fuzz corpus replay"
for dir in build/fuzz build-asan/fuzz; do
	[ -d "$dir" ] || continue
	for bin in "$dir"/*; do
		[ -f "$bin" ] && [ -x "$bin" ] && run_fuzz "$bin"
	done
done

for build in build build-asan; do
	run_e2e "$build"
done

echo
if [ ${#failures[@]} -gt 0 ]; then
	echo "failures:"
	printf '  %s\n' "${failures[@]}"
fi
summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ] && [ $((passed + failed)) -gt 0 ]
