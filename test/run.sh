#!/usr/bin/env bash
# The whole test suite: system packages, node modules, build, unit suites in parallel, then
# the lab suites (real strongSwan in network namespaces) one file at a time.
# Prints a closing line "tests: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."

bash test/install-deps.sh || exit 1
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || exit 1
fi
npm run --silent build || exit 1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
unit_tests=$(find test -name '*.test.ts' -not -path 'test/lab/*' -not -path 'test/fixtures/*' | sort)
lab_tests=$(find test/lab -name '*.test.ts' | sort)
# shellcheck disable=SC2086
npx tap run --disable-coverage --reporter=tap $unit_tests 2>&1 | tee -a "$log" || status=1
# shellcheck disable=SC2086
npx tap run --disable-coverage --reporter=tap --jobs=1 $lab_tests 2>&1 | tee -a "$log" || status=1

sum() { grep -E '^# \{ total' "$log" | grep -o "$1: [0-9]*" | awk '{s+=$2} END {print s+0}'; }
passed=$(sum pass); failed=$(sum fail); skipped=$(sum skip); todo=$(sum todo)
[ "$failed" -gt 0 ] && status=1
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit $status
