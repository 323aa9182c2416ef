"""Private, throw-away database servers for tests that stop, crash or restart one.

The shared local servers (5432, 3306) are used by other test runs at the same
time and must never be stopped or reconfigured: a test that needs to take a
server down makes its own here, in a temporary directory, on a spare loopback
port, and removes it afterwards::

    from tests import servers

    server = servers.start_server("postgresql")    # or "mysql"
    try:
        engine = fastsess.create_engine(server.url)
        server.restart("immediate")                # or "fast"
    finally:
        server.close()                             # stops it, deletes its directory

``start_server`` raises ``ServerUnavailable`` when the server binaries are not
installed (``missing_binaries(dialect)`` says why beforehand); any other
failure to start is a ``ServerError`` with the end of the server's log.

Nothing here reads or writes the system servers' configuration: PostgreSQL is
given its own data directory (``initdb``) and socket directory, MariaDB runs
with ``--no-defaults`` and every path on the command line.  As root,
PostgreSQL runs as the ``postgres`` OS user (it refuses root) and MariaDB as
``mysql``.  Servers still running when the interpreter exits are killed
(atexit), and directories a killed test run left behind are swept the next
time a server is made (only when their owner process is gone).

Settings favour speed over durability against a *machine* crash (``fsync =
off`` on PostgreSQL): the tests crash the server process, never the machine,
and what a commit wrote to the operating system survives a process crash.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

PG_BINDIR = os.environ.get("FASTSESS_TEST_PG_BINDIR", "/usr/lib/postgresql/15/bin")
_SBIN_PATH = "/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin:/sbin:/bin"
_PREFIX = "fastsess-srv-"
_HOST = "127.0.0.1"
DATABASE = "test"

_live: set = set()
_live_lock = threading.Lock()
_swept = False


class ServerUnavailable(RuntimeError):
    """The binaries needed to run a private server are not installed."""


class ServerError(RuntimeError):
    """A private server failed to start or stop."""


# -- binaries -----------------------------------------------------------------


def _pg_tool(name: str) -> str | None:
    path = os.path.join(PG_BINDIR, name)
    return path if os.access(path, os.X_OK) else None


def _mariadb_tool(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name, path=_SBIN_PATH)
        if found:
            return found
    return None


def _os_user(name: str) -> str | None:
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        return None


def missing_binaries(dialect: str) -> str | None:
    """Why a private server of ``dialect`` cannot be made here, or None."""
    if dialect == "postgresql":
        absent = [n for n in ("initdb", "pg_ctl", "postgres") if _pg_tool(n) is None]
        if absent:
            return f"PostgreSQL server binaries not found in {PG_BINDIR}: {', '.join(absent)} " \
                   f"(install postgresql-15 or set FASTSESS_TEST_PG_BINDIR)"
        if os.geteuid() == 0 and _os_user("postgres") is None:
            return "running as root and there is no 'postgres' OS user to run PostgreSQL as"
        if os.geteuid() == 0 and shutil.which("runuser", path=_SBIN_PATH) is None:
            return "running as root and runuser(1) is missing (needed to run PostgreSQL as postgres)"
        return None
    if dialect == "mysql":
        absent = []
        if _mariadb_tool("mariadbd", "mysqld") is None:
            absent.append("mariadbd")
        if _mariadb_tool("mariadb-install-db", "mysql_install_db") is None:
            absent.append("mariadb-install-db")
        if absent:
            return f"MariaDB server binaries not found: {', '.join(absent)} (install mariadb-server)"
        return None
    raise ValueError(f"unknown dialect {dialect!r}")


# -- helpers ------------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_HOST, 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return True


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _kill_if_ours(pid: int, marker: str, first: int = signal.SIGKILL, grace: float = 5.0) -> None:
    """Signal ``pid`` (``first``; SIGKILL if it is still there after
    ``grace`` seconds) only when its command line names ``marker`` (our data
    directory): a recycled pid of an unrelated process is left alone."""
    if pid <= 0 or marker not in _cmdline(pid):
        return
    try:
        os.kill(pid, first)
        if first != signal.SIGKILL:
            deadline = time.monotonic() + grace
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(path: str, lines: int = 25) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()[-8000:]
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def sweep_stale(tmp_root: str | None = None) -> int:
    """Remove private-server directories whose owner process has died (a test
    run killed before its atexit ran), killing a server still running in one.
    Returns how many were removed."""
    root = tmp_root or tempfile.gettempdir()
    removed = 0
    try:
        names = os.listdir(root)
    except OSError:
        return 0
    for name in names:
        if not name.startswith(_PREFIX):
            continue
        base = os.path.join(root, name)
        try:
            with open(os.path.join(base, "owner.pid")) as f:
                owner = int(f.read().strip() or 0)
        except (OSError, ValueError):
            continue  # not finished being made, or not ours: leave it
        if owner <= 0 or _pid_alive(owner):
            continue
        # PostgreSQL: SIGQUIT is its immediate shutdown, which still ends the
        # child processes and frees the shared memory (SIGKILL would not).
        for pidfile, first in (("data/postmaster.pid", signal.SIGQUIT), ("mysqld.pid", signal.SIGKILL)):
            try:
                with open(os.path.join(base, pidfile)) as f:
                    _kill_if_ours(int(f.readline().strip() or 0), base, first)
            except (OSError, ValueError):
                pass
        shutil.rmtree(base, ignore_errors=True)
        removed += 1
    return removed


def _run(argv, log_path, timeout, what):
    """Run a set-up command with its output in ``log_path`` (never a pipe: a
    daemon it starts must not hold our pipe open)."""
    with open(log_path, "ab") as log:
        try:
            rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                timeout=timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            raise ServerError(f"{what} did not finish within {timeout} s:\n{_tail(log_path)}") from None
    if rc != 0:
        raise ServerError(f"{what} failed (exit {rc}): {' '.join(argv)}\n{_tail(log_path)}")


# -- servers ------------------------------------------------------------------


class PrivateServer:
    """One private server; see the module docstring.  Subclasses:
    ``PrivatePostgres``, ``PrivateMariaDB``.

    ``settings``: extra server settings (``{"max_connections": 50}``), for
    PostgreSQL lines of postgresql.conf, for MariaDB ``--name=value`` options.
    """

    dialect = ""
    #: Restart / stop modes: "fast" (clean shutdown, sessions are ended) and
    #: "immediate" (a crash: no shutdown work, recovery on the next start).
    MODES = ("fast", "immediate")

    def __init__(self, settings: dict | None = None, tmp_root: str | None = None):
        global _swept
        if not _swept:
            _swept = True
            sweep_stale(tmp_root)
        self.settings = dict(settings or {})
        self.host = _HOST
        self.port = free_port()
        self.database = DATABASE
        self.base = tempfile.mkdtemp(prefix=f"{_PREFIX}{self.dialect}-", dir=tmp_root)
        self.log_path = os.path.join(self.base, "server.log")
        self._closed = False
        self._started_once = False
        self._last_probe_error = None
        #: Seconds the set-up (init + first start) took, and the last start/stop.
        self.timings: dict = {}
        with _live_lock:
            _live.add(self)
        with open(os.path.join(self.base, "owner.pid"), "w") as f:
            f.write(str(os.getpid()))

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self.running else "stopped")
        return f"<{type(self).__name__} {self.host}:{self.port} {state} in {self.base}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # What subclasses provide.
    @property
    def url(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def connect(self, timeout: float = 2.0):  # pragma: no cover - abstract
        """A plain driver connection (autocommit) to the test database."""
        raise NotImplementedError

    @property
    def running(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def _init(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _start(self, timeout: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _stop(self, mode: str, timeout: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _kill_now(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _create_database(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # The common part.
    def query(self, sql: str, params=None) -> list:
        """Rows (tuples) of one statement on a fresh connection."""
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
            cur.close()
            return rows
        finally:
            conn.close()

    def _probe(self):
        """A connection to the server's own maintenance database (the test
        database does not exist before the first start)."""
        return self.connect()

    def accepting(self) -> bool:
        """Whether a new connection can run a query right now."""
        try:
            conn = self._probe()
        except Exception as e:
            self._last_probe_error = e
            return False
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            return [tuple(r) for r in cur.fetchall()] == [(1,)]
        except Exception as e:
            self._last_probe_error = e
            return False
        finally:
            conn.close()

    def wait_accepting(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.accepting():
            if not self.running:
                raise ServerError(f"{self!r} exited while starting:\n{_tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise ServerError(f"{self!r} accepts no connections after {timeout} s "
                                  f"(last error: {self._last_probe_error}):\n{_tail(self.log_path)}")
            time.sleep(0.02)

    def setup(self, timeout: float = 60.0) -> "PrivateServer":
        """Create the data directory and start the server the first time."""
        started = time.monotonic()
        self._init()
        self.timings["init"] = time.monotonic() - started
        self.start(timeout)
        self._create_database()
        self.timings["setup"] = time.monotonic() - started
        return self

    def start(self, timeout: float = 60.0) -> None:
        """Start the server; returns once it accepts connections on TCP."""
        if self._closed:
            raise ServerError(f"{self!r} is closed")
        if self.running:
            return
        started = time.monotonic()
        attempts = 1 if self._started_once else 3  # the first start may retry on a port clash
        for attempt in range(attempts):
            try:
                self._start(timeout)
                self.wait_accepting(timeout)
                break
            except ServerError as e:
                clash = "already in use" in str(e) or "Bind on TCP/IP port" in str(e)
                if attempt + 1 == attempts or not clash:
                    raise
                self._kill_now()
                self.port = free_port()
        self._started_once = True
        self.timings["start"] = time.monotonic() - started

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """Stop the server: ``mode`` "fast" (clean shutdown) or "immediate"
        (a crash).  Returns once the server process is gone."""
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        if self._closed or not self.running:
            return
        started = time.monotonic()
        self._stop(mode, timeout)
        self.timings["stop"] = time.monotonic() - started

    def restart(self, mode: str = "fast", down_for: float = 0.0, timeout: float = 60.0) -> None:
        """Stop (``mode``), stay down ``down_for`` seconds, start again on the
        same port; returns once the server accepts connections."""
        self.stop(mode, timeout)
        if down_for > 0:
            time.sleep(down_for)
        self.start(timeout)

    def close(self) -> None:
        """Stop the server (as a crash: nothing is kept) and delete its
        directory.  Idempotent; never raises for a server that is gone."""
        if self._closed:
            return
        self._closed = True
        try:
            try:
                if self.running:
                    self._stop("immediate", 30)
            except Exception:
                pass
            finally:
                self._kill_now()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            with _live_lock:
                _live.discard(self)


class PrivatePostgres(PrivateServer):
    """PostgreSQL from ``PG_BINDIR`` (initdb, pg_ctl), run as ``postgres`` when root.

    Set-up: ``initdb -D <base>/data -U postgres -A trust -E UTF8 --no-locale
    --no-sync``, the settings appended to its postgresql.conf
    (``listen_addresses = '127.0.0.1'``, its own ``unix_socket_directories``,
    ``fsync = off``, small ``shared_buffers``), then ``pg_ctl -D <base>/data
    -l <base>/server.log -w -o "-p <port>" start``; stop with ``pg_ctl -D
    <base>/data -m fast|immediate -w stop``.
    """

    dialect = "postgresql"
    user = "postgres"

    def __init__(self, settings=None, tmp_root=None):
        super().__init__(settings, tmp_root)
        self.data = os.path.join(self.base, "data")
        self.sockdir = os.path.join(self.base, "sock")
        self._os_user = _os_user("postgres") if os.geteuid() == 0 else None
        os.mkdir(self.sockdir)
        if self._os_user:
            entry = pwd.getpwnam(self._os_user)
            for path in (self.base, self.sockdir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chmod(self.base, 0o700)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def _argv(self, *argv) -> list:
        if self._os_user:
            return [shutil.which("runuser", path=_SBIN_PATH), "-u", self._os_user, "--", *argv]
        return list(argv)

    def connect(self, timeout: float = 2.0, dbname: str | None = None):
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user,
                               dbname=dbname or self.database, autocommit=True,
                               connect_timeout=max(1, int(timeout)))

    def _probe(self):
        return self.connect(dbname="postgres")

    def _write_conf(self) -> None:
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.sockdir}'",
            "max_connections": "60",
            "shared_buffers": "16MB",
            "fsync": "off",  # see the module docstring: only processes crash here
            "logging_collector": "off",
            "log_min_messages": "warning",
        }
        conf.update({k: str(v) for k, v in self.settings.items()})
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# fastsess private test server\n")
            for key, value in conf.items():
                f.write(f"{key} = {value}\n")

    def _init(self) -> None:
        _run(self._argv(_pg_tool("initdb"), "-D", self.data, "-U", self.user, "-A", "trust",
                        "-E", "UTF8", "--no-locale", "--no-sync"),
             os.path.join(self.base, "initdb.log"), 120, "initdb")
        self._write_conf()

    def _start(self, timeout: float) -> None:
        # The port is given on the command line (it may change when the first
        # start finds it taken); everything else is in postgresql.conf.
        try:
            _run(self._argv(_pg_tool("pg_ctl"), "-D", self.data, "-l", self.log_path, "-w",
                            "-t", str(int(timeout)), "-o", f"-p {self.port}", "start"),
                 os.path.join(self.base, "pg_ctl.log"), timeout + 10, "pg_ctl start")
        except ServerError as e:
            raise ServerError(f"{e}\nserver log:\n{_tail(self.log_path)}") from None

    def _stop(self, mode: str, timeout: float) -> None:
        _run(self._argv(_pg_tool("pg_ctl"), "-D", self.data, "-m", mode, "-w",
                        "-t", str(int(timeout)), "stop"),
             os.path.join(self.base, "pg_ctl.log"), timeout + 10, f"pg_ctl stop -m {mode}")

    def _postmaster_pid(self) -> int:
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline().strip() or 0)
        except (OSError, ValueError):
            return 0

    @property
    def running(self) -> bool:
        pid = self._postmaster_pid()
        return pid > 0 and _pid_alive(pid)

    def _kill_now(self) -> None:
        # SIGQUIT: an immediate shutdown without pg_ctl (children ended,
        # shared memory freed); SIGKILL only if that does not work.
        pid = self._postmaster_pid()
        if pid and _pid_alive(pid):
            _kill_if_ours(pid, self.data, signal.SIGQUIT)
            deadline = time.monotonic() + 5
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)

    def _create_database(self) -> None:
        conn = self.connect(dbname="postgres")
        try:
            conn.execute(f"CREATE DATABASE {self.database} ENCODING 'UTF8' TEMPLATE template0")
        finally:
            conn.close()


class PrivateMariaDB(PrivateServer):
    """MariaDB (``mariadbd``), run as ``mysql`` when root, with ``--no-defaults``.

    Set-up: ``mariadb-install-db --no-defaults --datadir=<base>/data
    --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve
    [--user=mysql]`` (root@127.0.0.1 with an empty password), then
    ``mariadbd --no-defaults --datadir=... --port=<port> --bind-address=127.0.0.1
    --socket=<base>/mysqld.sock --pid-file=<base>/mysqld.pid ... [--user=mysql]``
    as a child process; "fast" stop is SIGTERM (a normal shutdown),
    "immediate" is SIGKILL.
    """

    dialect = "mysql"
    user = "root"

    def __init__(self, settings=None, tmp_root=None):
        super().__init__(settings, tmp_root)
        self.data = os.path.join(self.base, "data")
        self.socket_path = os.path.join(self.base, "mysqld.sock")
        self.pid_file = os.path.join(self.base, "mysqld.pid")
        self._os_user = _os_user("mysql") if os.geteuid() == 0 else None
        self._proc: subprocess.Popen | None = None
        if self._os_user:
            entry = pwd.getpwnam(self._os_user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
            os.chmod(self.base, 0o700)

    @property
    def url(self) -> str:
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"

    def connect(self, timeout: float = 2.0, db: str | None = None):
        import MySQLdb

        return MySQLdb.connect(host=self.host, port=self.port, user=self.user,
                               db=self.database if db is None else db, autocommit=True,
                               charset="utf8mb4", connect_timeout=max(1, int(timeout)))

    def _probe(self):
        return self.connect(db="")

    def _server_options(self) -> list:
        options = {
            "datadir": self.data,
            "port": str(self.port),
            "bind-address": "127.0.0.1",
            "socket": self.socket_path,
            "pid-file": self.pid_file,
            "log-error": self.log_path,
            "character-set-server": "utf8mb4",
            "collation-server": "utf8mb4_unicode_ci",
            "innodb-buffer-pool-size": "32M",
            "innodb-log-file-size": "16M",
            "max-connections": "100",
        }
        options.update({k.replace("_", "-"): str(v) for k, v in self.settings.items()})
        argv = [f"--{k}={v}" for k, v in options.items()]
        argv.append("--skip-name-resolve")
        if self._os_user:
            argv.append(f"--user={self._os_user}")
        elif os.geteuid() == 0:
            argv.append("--user=root")
        return argv

    def _init(self) -> None:
        argv = [_mariadb_tool("mariadb-install-db", "mysql_install_db"), "--no-defaults",
                f"--datadir={self.data}", "--auth-root-authentication-method=normal",
                "--skip-test-db", "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M"]
        if self._os_user:
            argv.append(f"--user={self._os_user}")
        elif os.geteuid() == 0:
            argv.append("--user=root")
        _run(argv, os.path.join(self.base, "install.log"), 120, "mariadb-install-db")

    def _start(self, timeout: float) -> None:
        argv = [_mariadb_tool("mariadbd", "mysqld"), "--no-defaults", *self._server_options()]
        with open(os.path.join(self.base, "mariadbd.out"), "ab") as out:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        # wait_accepting (called next by start) notices an early exit.

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _stop(self, mode: str, timeout: float) -> None:
        proc = self._proc
        proc.send_signal(signal.SIGTERM if mode == "fast" else signal.SIGKILL)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise ServerError(f"{self!r} ignored SIGTERM for {timeout} s; killed:\n"
                              f"{_tail(self.log_path)}") from None

    def _kill_now(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def _create_database(self) -> None:
        conn = self.connect(db="")
        try:
            cur = conn.cursor()
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {self.database} "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            cur.close()
        finally:
            conn.close()


_CLASSES = {"postgresql": PrivatePostgres, "mysql": PrivateMariaDB}


def start_server(dialect: str, settings: dict | None = None,
                 tmp_root: str | None = None) -> PrivateServer:
    """A new private server of ``dialect``, set up and running.  The caller
    must ``close()`` it (a with block does)."""
    reason = missing_binaries(dialect)
    if reason:
        raise ServerUnavailable(reason)
    server = _CLASSES[dialect](settings, tmp_root)
    try:
        server.setup()
    except BaseException:
        server.close()
        raise
    return server


@atexit.register
def _close_all() -> None:
    """Last resort: whatever a test did not close dies with the interpreter."""
    with _live_lock:
        left = list(_live)
    for server in left:
        try:
            server.close()  # an immediate stop, then a kill if that failed
        except Exception:
            pass
