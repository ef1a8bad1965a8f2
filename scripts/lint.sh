#!/usr/bin/env bash
# lint.sh - banned functions (STYLE.md), cppcheck, and clang-format drift (report only).
set -u
cd "$(dirname "$0")/.."
rc=0
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|strncpy)[[:space:]]*\('
if grep -rnE "$banned" src/ tests/unit/ fuzz/ --include='*.c' --include='*.h' | grep -vE '(snprintf|vsnprintf)\('; then
	echo "lint: banned function used (see STYLE.md)"
	rc=1
fi
if command -v cppcheck >/dev/null; then
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
		--suppress=missingIncludeSystem -Isrc src/ || rc=1
fi
if command -v clang-format >/dev/null; then
	n=$(find src -name '*.[ch]' -print0 | xargs -0 clang-format --dry-run 2>&1 | grep -c 'warning:' || true)
	echo "lint: clang-format would change $n places (informational)"
fi
exit $rc
