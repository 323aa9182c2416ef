#!/usr/bin/env bash
# Bootstrap, then run:
#   1. native:      FASTSESS_REQUIRE_EXTENSION=1 pytest tests
#   2. pure-python: FASTSESS_PURE_PYTHON=1 pytest tests
#   3. benchmarks:  pytest benchmarks --benchmark-disable -q   (each benchmark once)
# Extra arguments are passed to every pytest run, e.g.  scripts/test.sh -x -k session
# All three runs always execute; the exit status is non-zero if any failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/bootstrap.sh" || { rc=$?; echo "bootstrap: FAILED (exit $rc)"; exit "$rc"; }

PY="$ROOT/.venv/bin/python"
names=() results=()
failed=0

# run_pytest NAME ALLOW_NO_TESTS ENV-ASSIGNMENTS... -- PYTEST-ARGS...
run_pytest() {
    local name="$1" allow_empty="$2" rc=0 start result
    shift 2
    local envargs=()
    while [[ $# -gt 0 && "$1" != -- ]]; do envargs+=("$1"); shift; done
    shift
    printf '\n==> [%s] pytest %s\n' "$name" "$*" >&2
    start=$SECONDS
    env "${envargs[@]}" "$PY" -m pytest "$@" || rc=$?
    if [[ $rc -eq 0 ]]; then
        result="passed"
    elif [[ $rc -eq 5 && $allow_empty -eq 1 ]]; then
        result="passed (no tests collected)"
    else
        case $rc in
            1) result="FAILED (tests failed)" ;;
            2) result="FAILED (interrupted)" ;;
            3) result="FAILED (internal error)" ;;
            4) result="FAILED (usage error)" ;;
            5) result="FAILED (no tests collected)" ;;
            *) result="FAILED (exit $rc)" ;;
        esac
        failed=1
    fi
    names+=("$name")
    results+=("$result ($((SECONDS - start))s)")
}

run_pytest native 0 -u FASTSESS_PURE_PYTHON FASTSESS_REQUIRE_EXTENSION=1 \
    -- tests "$@"
run_pytest pure-python 0 -u FASTSESS_REQUIRE_EXTENSION FASTSESS_PURE_PYTHON=1 \
    -- tests "$@"
run_pytest benchmarks 1 \
    -- benchmarks --benchmark-disable -q "$@"

printf '\n==> summary\n' >&2
for i in "${!names[@]}"; do
    printf '%s: %s\n' "${names[$i]}" "${results[$i]}"
done
exit $failed
