#!/usr/bin/env bash
# Development/CI set-up for fastsess.  Idempotent; safe to re-run.
#
#   scripts/bootstrap.sh           # run it
#   source scripts/bootstrap.sh    # run it, then activate .venv in this shell
#
# What it does:
#   1. installs missing build packages with apt (libpq-dev, libmariadb-dev,
#      pkg-config, gcc, and Python headers if the interpreter lacks them);
#   2. makes sure the local PostgreSQL and MariaDB servers are running and
#      accepting connections (skipped for a server whose FASTSESS_TEST_PG_URL /
#      FASTSESS_TEST_MYSQL_URL points to a non-local host);
#   3. creates .venv if missing and runs `pip install -e ".[test,bench]"`,
#      but only when pyproject.toml / setup.py / ext sources changed since the
#      last successful install (or `import fastsess` fails).
#
# Environment knobs:
#   FASTSESS_PYTHON          interpreter used to create .venv (default: python3)
#   FASTSESS_TEST_PG_URL     PostgreSQL the tests use (default: local 127.0.0.1:5432)
#   FASTSESS_TEST_MYSQL_URL  MariaDB/MySQL the tests use (default: local 127.0.0.1:3306)
#   FASTSESS_SERVER_TIMEOUT  seconds to wait for a server to accept connections (default 60)
#   FASTSESS_FORCE_INSTALL=1 reinstall the project even if nothing changed

# --- sourced: do the work in a child bash (so `set -e`/`exit` cannot kill the
# --- caller's shell), then activate the venv in the caller.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    _fastsess_bs_rc=0
    bash "${BASH_SOURCE[0]}" || _fastsess_bs_rc=$?
    if [[ $_fastsess_bs_rc -eq 0 ]]; then
        FASTSESS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
        export FASTSESS_ROOT
        # shellcheck disable=SC1091
        source "$FASTSESS_ROOT/.venv/bin/activate"
    fi
    return $_fastsess_bs_rc
fi

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.fastsess-install.stamp"
SOLIST="$VENV/.fastsess-install.so-list"
INSTALL_LOG="$VENV/.fastsess-install.log"
PY="${FASTSESS_PYTHON:-python3}"
SERVER_TIMEOUT="${FASTSESS_SERVER_TIMEOUT:-60}"
TMPD="${TMPDIR:-/tmp}"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }
warn() { printf 'bootstrap: warning: %s\n' "$*" >&2; }

# Show the tail of a log file on stderr (used on failures).
show_log() {
    local f="$1" n="${2:-40}"
    [[ -s "$f" ]] || return 0
    printf -- '---- last %s lines of %s ----\n' "$n" "$f" >&2
    tail -n "$n" "$f" >&2 || true
    printf -- '----\n' >&2
}

# Run a command as root: directly if we are root, else via sudo if present.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $* (not root and sudo not available); run it as root, then re-run this script"
    fi
}

# Serialise concurrent bootstraps of the same checkout.
if command -v flock >/dev/null 2>&1; then
    _lock="$TMPD/fastsess-bootstrap-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1).lock"
    exec 9>"$_lock"
    if ! flock -n 9; then
        say "waiting for another bootstrap of this checkout to finish (lock: $_lock)"
        flock -w 1800 9 || die "timed out waiting for the bootstrap lock $_lock"
    fi
fi


# ---------------------------------------------------------------------------
# 1. system packages
# ---------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
    local log="$TMPD/fastsess-apt.log"
    command -v apt-get >/dev/null 2>&1 || die "missing system packages: $* (and apt-get is not available: install them with your package manager)"
    if [[ $APT_UPDATED -eq 0 ]]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1 \
            || { show_log "$log"; die "apt-get update failed"; }
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1 \
        || { show_log "$log"; die "apt-get install $* failed"; }
}

# Interpreter whose headers matter: the venv's (if any) else the base one.
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    HDR_PY="$VENV/bin/python"
else
    HDR_PY="$PY"
    command -v "$PY" >/dev/null 2>&1 || die "Python interpreter '$PY' not found (set FASTSESS_PYTHON)"
fi

py_has_headers() {
    "$HDR_PY" -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' 2>/dev/null
}
py_is_system() {  # base interpreter lives under /usr (i.e. comes from apt)?
    [[ "$("$HDR_PY" -c 'import sys; print(sys.base_prefix)' 2>/dev/null)" == /usr ]]
}

ensure_system_packages() {
    local missing=() p
    if command -v dpkg >/dev/null 2>&1; then
        for p in libpq-dev libmariadb-dev pkg-config gcc; do
            dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
        done
        if ! py_has_headers; then
            py_is_system || die "Python headers (Python.h) missing for $HDR_PY, which is not an apt-installed Python; reinstall that Python with its development headers"
            missing+=(python3-dev)
        fi
        if [[ ! -x "$VENV/bin/python" ]] && py_is_system \
            && ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            missing+=(python3-venv)
        fi
        if [[ ${#missing[@]} -gt 0 ]]; then
            apt_install "${missing[@]}"
        fi
    else
        # Not a dpkg system: just check the tools/libraries are there.
        command -v gcc >/dev/null 2>&1 || command -v cc >/dev/null 2>&1 || missing+=("a C compiler (gcc)")
        command -v pkg-config >/dev/null 2>&1 || missing+=("pkg-config")
        if command -v pkg-config >/dev/null 2>&1; then
            pkg-config --exists libpq || command -v pg_config >/dev/null 2>&1 || missing+=("libpq development files")
            pkg-config --exists mariadb || pkg-config --exists libmariadb || pkg-config --exists mysqlclient \
                || missing+=("MariaDB/MySQL client development files")
        fi
        py_has_headers || missing+=("Python development headers for $HDR_PY")
        if [[ ${#missing[@]} -gt 0 ]]; then
            die "missing build prerequisites (install them with your package manager): $(IFS=,; echo "${missing[*]}")"
        fi
    fi
}

# ---------------------------------------------------------------------------
# 2. database servers
# ---------------------------------------------------------------------------
PG_DEFAULT_URL="postgresql://postgres@127.0.0.1:5432/test"
MY_DEFAULT_URL="mysql://root@127.0.0.1:3306/test"

# parse_url URL DEFAULT_PORT -> prints host, then port (one per line).
# Accepts URLs (postgresql://, postgresql+psycopg://, mysql://, mysql+mysqldb://,
# mariadb://, ...; ?host= / ?unix_socket= / ?port= query overrides) and libpq
# "key=value" strings.
parse_url() {
    "$HDR_PY" - "$1" "$2" <<'EOF'
import shlex, sys, urllib.parse as up
s, dport = sys.argv[1], sys.argv[2]
host = port = None
if "://" in s:
    p = up.urlsplit(s)
    q = up.parse_qs(p.query)
    try:
        port = p.port
    except ValueError:
        port = None
    host = up.unquote(p.hostname) if p.hostname else None
    for key in ("host", "unix_socket"):
        if q.get(key):
            host = q[key][0]
    if q.get("port"):
        port = q["port"][0]
else:
    try:
        toks = shlex.split(s)
    except ValueError:
        toks = s.split()
    for tok in toks:
        k, _, v = tok.partition("=")
        if k in ("host", "hostaddr") and host is None:
            host = v
        elif k == "port":
            port = v
if host and "," in host:          # libpq multi-host: first one
    host = host.split(",")[0]
if port and "," in str(port):
    port = str(port).split(",")[0]
print(host or "")
print(port or dport)
EOF
}

is_local_host() {
    local h="$1" a
    case "$h" in
        "" | localhost | localhost.* | 127.* | ::1 | 0.0.0.0 | :: | /* | @*) return 0 ;;
    esac
    [[ "$h" == "$(hostname 2>/dev/null || true)" ]] && return 0
    [[ "$h" == "$(hostname -f 2>/dev/null || true)" ]] && return 0
    for a in $(hostname -I 2>/dev/null || true); do
        [[ "$h" == "$a" ]] && return 0
    done
    return 1
}

tcp_open() {  # tcp_open HOST PORT
    local h="$1"
    [[ -z "$h" || "$h" == localhost ]] && h=127.0.0.1
    # shellcheck disable=SC2016
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$h" "$2" >/dev/null 2>&1
}

pg_ready() {  # pg_ready HOST PORT
    if command -v pg_isready >/dev/null 2>&1; then
        if [[ -n "$1" ]]; then
            pg_isready -q -t 3 -h "$1" -p "$2" >/dev/null 2>&1
        else
            pg_isready -q -t 3 -p "$2" >/dev/null 2>&1
        fi
    elif [[ "$1" == /* ]]; then
        [[ -S "$1/.s.PGSQL.$2" ]]
    else
        tcp_open "$1" "$2"
    fi
}

my_admin() { command -v mariadb-admin 2>/dev/null || command -v mysqladmin 2>/dev/null; }
my_ready() {  # my_ready HOST PORT   (ping succeeds even on "access denied")
    local adm
    adm="$(my_admin)" || adm=""
    if [[ -n "$adm" ]]; then
        if [[ "$1" == /* ]]; then
            "$adm" --connect-timeout=3 --socket="$1" ping >/dev/null 2>&1
        elif [[ -n "$1" ]]; then
            "$adm" --connect-timeout=3 -h "$1" -P "$2" ping >/dev/null 2>&1
        else
            "$adm" --connect-timeout=3 ping >/dev/null 2>&1
        fi
    elif [[ "$1" == /* ]]; then
        [[ -S "$1" ]]
    else
        tcp_open "$1" "$2"
    fi
}

PG_HOST="" PG_PORT="" PG_LOCAL=0 PG_LOG=""
MY_HOST="" MY_PORT="" MY_LOCAL=0 MY_LOG="$TMPD/fastsess-mariadbd.log" MY_STARTED=0

# Start servers that are local and not running; returns immediately
# (wait_servers does the waiting, so server start-up overlaps the pip install).
start_servers() {
    local out
    out="$(parse_url "${FASTSESS_TEST_PG_URL:-$PG_DEFAULT_URL}" 5432)" || die "cannot parse FASTSESS_TEST_PG_URL"
    PG_HOST="$(sed -n 1p <<<"$out")"; PG_PORT="$(sed -n 2p <<<"$out")"
    out="$(parse_url "${FASTSESS_TEST_MYSQL_URL:-$MY_DEFAULT_URL}" 3306)" || die "cannot parse FASTSESS_TEST_MYSQL_URL"
    MY_HOST="$(sed -n 1p <<<"$out")"; MY_PORT="$(sed -n 2p <<<"$out")"

    # --- PostgreSQL
    if is_local_host "$PG_HOST"; then
        PG_LOCAL=1
        if ! pg_ready "$PG_HOST" "$PG_PORT"; then
            if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ -z "$(ls -A /etc/postgresql 2>/dev/null)" ]]; then
                die "PostgreSQL is not running on ${PG_HOST:-localhost}:$PG_PORT and no local PostgreSQL server is installed.
  Install one (Debian/Ubuntu: apt-get install postgresql; the tests expect database 'test', user 'postgres', trust auth on 127.0.0.1:5432),
  or point FASTSESS_TEST_PG_URL at a running server."
            fi
            local line ver cl port status log
            ver=""
            while read -r line; do
                # shellcheck disable=SC2086
                set -- $line
                if [[ "${3:-}" == "$PG_PORT" ]]; then ver="$1" cl="$2" port="$3" status="$4" log="${7:-}"; break; fi
            done < <(pg_lsclusters -h 2>/dev/null || true)
            [[ -n "$ver" ]] || die "no local PostgreSQL cluster is configured for port $PG_PORT (see pg_lsclusters)"
            PG_LOG="$log"
            if [[ ! -d /run/postgresql && -d /run ]]; then
                as_root install -d -m 2775 -o postgres -g postgres /run/postgresql || true
            fi
            say "starting PostgreSQL $ver/$cl (port $port, was $status)"
            # 9>&-: the daemon must not inherit (and so hold forever) our lock fd.
            if ! out="$(as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$cl" start 2>&1 9>&-)"; then
                # It may merely be "already running" (still starting up): only
                # give up now if the cluster is really down.
                if pg_lsclusters -h 2>/dev/null | awk -v v="$ver" -v c="$cl" '$1 == v && $2 == c && $4 ~ /down/ { f = 1 } END { exit !f }'; then
                    [[ -n "$PG_LOG" ]] && show_log "$PG_LOG" 20
                    die "could not start PostgreSQL $ver/$cl: $out"
                fi
                warn "pg_ctlcluster $ver $cl start: $out"
            fi
        fi
    else
        say "PostgreSQL: using remote server $PG_HOST:$PG_PORT"
    fi

    # --- MariaDB
    if is_local_host "$MY_HOST"; then
        MY_LOCAL=1
        if ! my_ready "$MY_HOST" "$MY_PORT"; then
            local mysqld=""
            for mysqld in /usr/sbin/mariadbd /usr/sbin/mysqld ""; do
                [[ -z "$mysqld" || -x "$mysqld" ]] && break
            done
            if [[ -z "$mysqld" ]]; then
                die "MariaDB is not running on ${MY_HOST:-localhost}:$MY_PORT and no local MariaDB server is installed.
  Install one (Debian/Ubuntu: apt-get install mariadb-server; the tests expect database 'test', user root with empty password on 127.0.0.1:3306),
  or point FASTSESS_TEST_MYSQL_URL at a running server."
            fi
            command -v start-stop-daemon >/dev/null 2>&1 || die "start-stop-daemon not found; start $mysqld yourself"
            if [[ ! -d /run/mysqld && -d /run ]]; then
                as_root install -d -m 0755 -o mysql -g mysql /run/mysqld || true
            fi
            as_root rm -f "$MY_LOG" || true
            say "starting MariaDB ($mysqld)"
            MY_STARTED=1
            out="$(as_root start-stop-daemon --start --oknodo --background \
                --output "$MY_LOG" --exec "$mysqld" 2>&1 9>&-)" \
                || { show_log "$MY_LOG" 20; die "could not start MariaDB ($mysqld): $out"; }
        fi
    else
        say "MariaDB: using remote server $MY_HOST:$MY_PORT"
    fi
}

wait_for() {  # wait_for NAME CHECK-FN HOST PORT LOGFILE
    local name="$1" fn="$2" host="$3" port="$4" log="$5" deadline
    deadline=$((SECONDS + SERVER_TIMEOUT))
    until "$fn" "$host" "$port"; do
        if ((SECONDS >= deadline)); then
            [[ -n "$log" ]] && show_log "$log" 20
            die "$name did not accept connections on ${host:-localhost}:$port within ${SERVER_TIMEOUT}s${log:+ (log: $log)}"
        fi
        sleep 0.5
    done
}

# Create database `test` if we are using the default (local) URLs. Best effort.
ensure_test_dbs() {
    if [[ -z "${FASTSESS_TEST_PG_URL:-}" ]] && command -v psql >/dev/null 2>&1; then
        local have
        if have="$(psql -w -X -q -t -A -h 127.0.0.1 -p 5432 -U postgres -d postgres \
                -c "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>&1)"; then
            if [[ "$have" != 1 ]]; then
                say "creating PostgreSQL database 'test'"
                psql -w -X -q -h 127.0.0.1 -p 5432 -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null 2>&1 \
                    || warn "could not create PostgreSQL database 'test'"
            fi
        else
            warn "cannot connect to PostgreSQL as postgres@127.0.0.1:5432: $have"
        fi
    fi
    if [[ -z "${FASTSESS_TEST_MYSQL_URL:-}" ]]; then
        local cli
        cli="$(command -v mariadb 2>/dev/null || command -v mysql 2>/dev/null)" || return 0
        "$cli" --connect-timeout=5 -h 127.0.0.1 -P 3306 -uroot -e 'CREATE DATABASE IF NOT EXISTS test' >/dev/null 2>&1 \
            || warn "cannot connect to MariaDB as root@127.0.0.1:3306 (empty password) to ensure database 'test' exists"
    fi
}

wait_servers() {
    if [[ $PG_LOCAL -eq 1 ]]; then
        wait_for PostgreSQL pg_ready "$PG_HOST" "$PG_PORT" "$PG_LOG"
    fi
    if [[ $MY_LOCAL -eq 1 ]]; then
        local log=""
        [[ $MY_STARTED -eq 1 ]] && log="$MY_LOG"
        wait_for MariaDB my_ready "$MY_HOST" "$MY_PORT" "$log"
    fi
    ensure_test_dbs
}

# ---------------------------------------------------------------------------
# 3. virtualenv + editable install
# ---------------------------------------------------------------------------
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

ensure_venv() {
    if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1; then
        return 0
    fi
    if [[ -e "$VENV" ]]; then
        say "existing .venv is broken (its interpreter/pip does not run); recreating it"
        rm -rf "$VENV"
    fi
    say "creating .venv ($("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])'))"
    local log="$TMPD/fastsess-venv.log"
    "$PY" -m venv "$VENV" >"$log" 2>&1 || { show_log "$log"; die "'$PY -m venv .venv' failed"; }
    "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel >"$log" 2>&1 \
        || { show_log "$log"; die "upgrading pip/setuptools/wheel in .venv failed"; }
}

# Hash of everything that should trigger a reinstall/rebuild.
install_hash() {
    (
        cd "$ROOT"
        echo "stamp-format 1; extras test,bench"
        "$VENV/bin/python" -VV
        for f in pyproject.toml setup.py setup.cfg MANIFEST.in; do
            [[ -f "$f" ]] && sha256sum "$f"
        done
        find ext src -type f \( -name '*.pyx' -o -name '*.pxi' -o -name '*.pxd' -o -name '*.h' \) \
            -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum
        # The session core is compiled from its own .py source (setup.py's
        # COMPILED_MODULES, all in src/fastsess/): any of them changing rebuilds.
        find src/fastsess -maxdepth 1 -type f -name '*.py' -print0 2>/dev/null | sort -z \
            | xargs -0 -r sha256sum
    ) | sha256sum | cut -d' ' -f1
}

built_objects() {
    (cd "$ROOT" && find src ext -type f \( -name '*.so' -o -name '*.pyd' \) 2>/dev/null | sort)
}

import_ok() {
    (cd / && "$VENV/bin/python" -c 'import fastsess') >/dev/null 2>&1
}

install_uptodate() {
    [[ "${FASTSESS_FORCE_INSTALL:-0}" != 1 ]] || return 1
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$1" ]] || return 1
    if [[ -f "$SOLIST" ]]; then
        local f
        while IFS= read -r f; do
            [[ -z "$f" || -f "$ROOT/$f" ]] || return 1
        done <"$SOLIST"
    fi
    import_ok
}

ensure_install() {
    if [[ ! -f "$ROOT/pyproject.toml" && ! -f "$ROOT/setup.py" ]]; then
        warn "no pyproject.toml or setup.py in $ROOT yet; skipping the project install"
        return 0
    fi
    local h
    h="$(install_hash)"
    if install_uptodate "$h"; then
        return 0
    fi
    say "installing fastsess into .venv (pip install -e \".[test,bench]\"; log: $INSTALL_LOG)"
    rm -f "$STAMP" "$SOLIST"
    if ! (cd "$ROOT" && "$VENV/bin/python" -m pip install -e ".[test,bench]") >"$INSTALL_LOG" 2>&1; then
        show_log "$INSTALL_LOG" 60
        die "pip install -e \".[test,bench]\" failed (full log: $INSTALL_LOG)"
    fi
    if ! import_ok; then
        (cd / && "$VENV/bin/python" -c 'import fastsess') >&2 || true
        die "fastsess was installed but 'import fastsess' fails"
    fi
    built_objects >"$SOLIST"
    # The hash taken *before* the build: if sources are edited while pip runs,
    # the next run rebuilds.
    printf '%s\n' "$h" >"$STAMP"
}

# ---------------------------------------------------------------------------
ensure_system_packages
start_servers
ensure_venv
ensure_install
wait_servers
say "bootstrap ok"
