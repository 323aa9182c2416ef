#!/usr/bin/env bash
# RESTAlchemy's own test suite (shipped inside the restalchemy package), run
# stock and with fastsess.restalchemy.install() in effect, on PostgreSQL and
# on MySQL/MariaDB.  Usage:
#
#   scripts/restalchemy_suite.sh [stock|fastsess|both] [postgresql|mysql|both] [pytest args...]
#
# Each run gets a database of its own (RESTAlchemy's functional tests drop
# every table of the database they are pointed at), created on the local
# servers (FASTSESS_TEST_PG_URL / FASTSESS_TEST_MYSQL_URL, as tests/conftest.py
# reads them) and dropped afterwards.  "fastsess" runs put a sitecustomize on
# PYTHONPATH that calls install() at interpreter start, so the subprocesses
# RESTAlchemy's tests start (engine lifecycle, perf probe) are drop-in too.
# RESTAlchemy's tests need `parameterized`, installed into a cache folder
# outside the venv.  RESTAlchemy's perf guards are skipped (RA_PERF_SKIP=1) unless
# RA_PERF_SKIP is set empty.  Logs go to $OUT (default /tmp/fastsess-ra-suite).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
MODES="${1:-both}"; DIALECTS="${2:-both}"; shift $(( $# > 2 ? 2 : $# ))
OUT="${OUT:-/tmp/fastsess-ra-suite}"
DEPS="${FASTSESS_RA_SUITE_DEPS:-${XDG_CACHE_HOME:-$HOME/.cache}/fastsess-ra-suite-deps}"
PG_URL="${FASTSESS_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/test}"
MYSQL_URL="${FASTSESS_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
mkdir -p "$OUT" "$DEPS"

RA_TESTS="$("$PY" -c 'import os, restalchemy.tests as t; print(os.path.dirname(t.__file__))')" || exit 2
[[ -d "$DEPS/parameterized" ]] || "$PY" -m pip install -q --target "$DEPS" parameterized || exit 2

SITE="$OUT/site"; mkdir -p "$SITE"
cat > "$SITE/sitecustomize.py" <<'EOF'
import os
if os.environ.get("FASTSESS_RA_SUITE_INSTALL") == "1":
    import fastsess.restalchemy
    fastsess.restalchemy.install()
EOF

# db_admin DIALECT create|drop NAME: runs through fastsess on the server's own database.
db_admin() {
    "$PY" - "$1" "$2" "$3" "$PG_URL" "$MYSQL_URL" <<'EOF'
import sys
import fastsess
dialect, action, name, pg, my = sys.argv[1:]
engine = fastsess.create_engine(pg if dialect == "postgresql" else my, max_size=1)
raw = engine.get_connection()
if dialect == "postgresql":
    raw.autocommit = True
    sql = {"create": f"CREATE DATABASE {name}", "drop": f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"}
else:
    sql = {"create": f"CREATE DATABASE {name}", "drop": f"DROP DATABASE IF EXISTS {name}"}
if action == "create":
    raw.cursor().execute(sql["drop"])
raw.cursor().execute(sql[action])
if dialect == "postgresql":
    raw.autocommit = False
engine.close_connection(raw)
engine.close()
EOF
}

url_for() {  # DIALECT DBNAME -> the server URL with that database
    local base; [[ $1 == postgresql ]] && base="$PG_URL" || base="$MYSQL_URL"
    echo "${base%/*}/$2"
}

status=0
[[ $MODES == both ]] && MODES="stock fastsess"
[[ $DIALECTS == both ]] && DIALECTS="postgresql mysql"
for mode in $MODES; do
    for dialect in $DIALECTS; do
        db="ra_suite_${mode}_${dialect:0:2}_$$"
        log="$OUT/${mode}_${dialect}.log"
        db_admin "$dialect" create "$db" || { echo "cannot create $db on $dialect"; exit 2; }
        install=0; [[ $mode == fastsess ]] && install=1
        printf '==> %s on %s: %s\n' "$mode" "$dialect" "$log"
        (cd "$OUT" && PYTHONPATH="$SITE:$DEPS" FASTSESS_RA_SUITE_INSTALL=$install \
            DATABASE_URI="$(url_for "$dialect" "$db")" RA_PERF_SKIP="${RA_PERF_SKIP-1}" \
            "$PY" -m pytest -p no:cacheprovider -o addopts="" -q -rfEs "$RA_TESTS" "$@" \
            >"$log" 2>&1) || status=1
        db_admin "$dialect" drop "$db"
        tail -n 1 "$log"
    done
done
exit $status
