"""The import rules of DESIGN.md ("Imports run one way"), checked on the source,
and in real processes that lack one database's driver.

The source checks import nothing: every module under ``src/fastsess`` is
parsed with ``ast`` and every import statement counts, lazy ones (inside a
function) too, since a lazy import that closes a cycle only hides it until
the function runs.  ``importlib.import_module("...")`` and
``__import__("...")`` with a literal name count as imports; an ``if
TYPE_CHECKING:`` body does not (it never runs).  The compiled kernels'
sources (``ext/fastsess/*.pyx``, ``*.pxi``) are read for their Python-level
imports (``cimport`` is C-level and compile-time, so it does not count).

Each failure names the file and line of every offending import and says
what to do about it.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import URLS

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "fastsess"
EXT = ROOT / "ext" / "fastsess"

# -- the rules, as data ---------------------------------------------------------------

# Third-party packages (top-level import names) no module may import unless an
# entry of ALLOWED below lets it.
CHECKED = {
    "psycopg": "psycopg 3",
    "psycopg_c": "psycopg's C implementation",
    "psycopg_pool": "psycopg_pool",
    "MySQLdb": "mysqlclient",
    "mysql": "mysql-connector",
    "asyncmy": "asyncmy",
    "asyncpg": "asyncpg",
    "aiomysql": "aiomysql",
    "sqlalchemy": "SQLAlchemy",
    "restalchemy": "RESTAlchemy",
}
# The database drivers among them: importing one at import time means a user
# needs it installed.
DB_DRIVERS = {"psycopg", "psycopg_c", "psycopg_pool", "MySQLdb", "mysql", "asyncmy", "asyncpg",
              "aiomysql"}


@dataclass(frozen=True)
class Allowed:
    package: str      # modules it covers: this one and everything below it
    names: frozenset  # top-level names from CHECKED they may import
    lazy_only: bool   # only inside a function, never at import time
    why: str


ALLOWED = [
    Allowed("fastsess.drivers",
            frozenset({"psycopg", "psycopg_c", "MySQLdb", "mysql", "asyncmy", "aiomysql"}),
            lazy_only=False,
            why="the driver adapters, sync and async: the one layer that talks to a driver "
                "(the rest of fastsess reaches a driver through an adapter)"),
    Allowed("fastsess.restalchemy", frozenset({"restalchemy"}), lazy_only=False,
            why="the RESTAlchemy drop-in derives from RESTAlchemy's engines, sessions, "
                "dialects and exceptions (a leaf: fastsess never imports it)"),
    Allowed("fastsess.restalchemy", frozenset({"psycopg", "MySQLdb", "mysql"}), lazy_only=True,
            why="the drop-in must name driver classes (psycopg's errors, mysql-connector's "
                "errors that RESTAlchemy catches, a mysqlclient flag); lazily, so a MySQL "
                "user needs no psycopg and a PostgreSQL user no MySQLdb"),
    Allowed("fastsess.restalchemy.adapters_pgsql", frozenset({"psycopg"}), lazy_only=False,
            why="the drop-in's PostgreSQL adapter: a module the drop-in engines import only "
                "when a PostgreSQL engine is made"),
    Allowed("fastsess.restalchemy.adapters_mysql", frozenset({"MySQLdb"}), lazy_only=False,
            why="the drop-in's MySQL adapter: a module the drop-in engines import only when a "
                "MySQL engine is made"),
    Allowed("fastsess.bench", frozenset(CHECKED), lazy_only=True,
            why="the bench compares fastsess with the raw drivers, psycopg_pool, RESTAlchemy "
                "and SQLAlchemy; lazily, so it runs (and says what it skipped) with only "
                "some of them installed"),
]

# Integrations on top of fastsess: the core never imports them.
LEAVES = {
    "fastsess.restalchemy": "the RESTAlchemy drop-in (install() is the user's choice)",
    "fastsess.bench": "the benchmark command",
    "fastsess.web": "ASGI/WSGI middleware and framework glue",
}
# Leaf -> leaves it may import.
LEAF_IMPORTS = {
    "fastsess.bench": {"fastsess.restalchemy"},  # it benchmarks RESTAlchemy on fastsess
}
# Core modules that may import a leaf anyway.
LEAF_ENTRY_POINTS = {
    "fastsess.__main__": "the `fastsess` / `python -m fastsess` command dispatches to the "
                         "bench; `import fastsess` never imports it",
}

# The kernels: the pure twin and what it shares with the compiled module.
# ``fastsess._speedups`` (compiled, read from ext/) follows the same rule.
KERNELS = {"fastsess._speedups_py", "fastsess._kernels_common", "fastsess._speedups"}
KERNELS_MAY_IMPORT = {"fastsess.errors", "fastsess._kernels_common"}


# -- reading the source -----------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    module: str     # the importing module
    target: str     # what it imports: a module name (fastsess's resolved to the module)
    path: Path
    line: int
    function: str | None  # the enclosing function (None: runs at import time)

    @property
    def lazy(self) -> bool:
        return self.function is not None

    def where(self) -> str:
        how = f" (lazy, in {self.function})" if self.lazy else ""
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}{how}"


def _module_name(path: Path, base: Path, package: str) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """The imports of one module: (name as written, relative level, names
    imported from it, line, enclosing function or None)."""

    def __init__(self):
        self.found = []
        self._function = []

    def _visit_function(self, node):
        self._function.append(".".join([*self._function[-1:], node.name]))
        self.generic_visit(node)
        self._function.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _visit_function

    def visit_Lambda(self, node):
        self._function.append("<lambda>")
        self.generic_visit(node)
        self._function.pop()

    def _add(self, name, level, node, names=()):
        self.found.append((name, level, tuple(names), node.lineno,
                           self._function[-1] if self._function else None))

    def visit_If(self, node):
        if _is_type_checking(node.test):
            for child in node.orelse:  # the body never runs
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node):
        for alias in node.names:
            self._add(alias.name, 0, node)

    def visit_ImportFrom(self, node):
        self._add(node.module or "", node.level, node, [a.name for a in node.names])

    def visit_Call(self, node):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in ("import_module", "__import__") and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str) \
                and not node.args[0].value.startswith("."):
            self._add(node.args[0].value, 0, node)
        self.generic_visit(node)


# Python-level imports in Cython source (``from x cimport y`` does not match).
_PYX_FROM = re.compile(r"^\s*from\s+([\w.]+)\s+import\s+(.+)$")
_PYX_IMPORT = re.compile(r"^\s*import\s+([\w.]+)")


def _cython_imports(path: Path):
    """(target, level, names, line, function) of each Python import in a .pyx/.pxi."""
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        m = _PYX_FROM.match(line)
        if m:
            names = [n.strip().split(" as ")[0] for n in m.group(2).strip("()\\ ").split(",")]
            yield m.group(1), 0, tuple(n for n in names if n), line_no, None
            continue
        m = _PYX_IMPORT.match(line)
        if m:
            yield m.group(1), 0, (), line_no, None


@dataclass
class Package:
    modules: dict   # module name -> path
    imports: list   # every Import, fastsess-internal ones resolved to modules

    def internal(self):
        return [i for i in self.imports if i.target in self.modules]

    def external(self):
        return [i for i in self.imports if i.target.split(".")[0] in CHECKED]


def _resolve(module: str, is_package: bool, name: str, level: int) -> str:
    if not level:
        return name
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def scan(src: Path = SRC, ext: Path | None = EXT, package: str = "fastsess") -> Package:
    """Every import of every module of ``package`` (sources in ``src``, compiled
    kernels' sources in ``ext``)."""
    sources = {}
    for path in sorted(src.rglob("*.py")):
        sources[_module_name(path, src, package)] = (path, None)
    if ext is not None and ext.is_dir():
        for pyx in sorted(ext.glob("*.pyx")):
            # A .pyx and the .pxi files it includes make one compiled module.
            sources[_module_name(pyx, ext, package)] = (pyx, sorted(ext.glob("*.pxi")))
    modules = {name: path for name, (path, _) in sources.items()}
    imports = []
    for module, (path, includes) in sources.items():
        if includes is None:
            visitor = _Imports()
            visitor.visit(ast.parse(path.read_text(), str(path)))
            found = [(path, f) for f in visitor.found]
        else:
            found = [(p, f) for p in [path, *includes] for f in _cython_imports(p)]
        is_package = path.name == "__init__.py"
        for where, (name, level, names, line, function) in found:
            target = _resolve(module, is_package, name, level)
            # ``from pkg import mod`` imports the module pkg.mod; ``from pkg
            # import attr`` imports pkg.
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            for t in subs or [target]:
                imports.append(Import(module, t, where, line, function))
            if subs and len(subs) < len(names):
                imports.append(Import(module, target, where, line, function))
    return Package(modules, imports)


@pytest.fixture(scope="module")
def package() -> Package:
    if not SRC.is_dir():
        pytest.skip(f"no source tree at {SRC} (an installed wheel without its checkout)")
    return scan()


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _leaf_of(module: str) -> str | None:
    return next((leaf for leaf in LEAVES if _under(module, leaf)), None)


# -- cycles ---------------------------------------------------------------------------


def _strongly_connected(graph: dict) -> list:
    """Tarjan's strongly connected components of ``graph`` (node -> successors)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            out.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def _cycles(graph: dict, component: set, limit: int) -> list:
    """Elementary cycles inside ``component`` (each once, starting at its
    smallest module), at most ``limit`` of them."""
    found = []
    for start in sorted(component):
        allowed = {n for n in component if n >= start}

        def walk(node, path):
            for succ in sorted(graph.get(node, ())):
                if len(found) >= limit:
                    return
                if succ == start:
                    found.append(path + [start])
                elif succ in allowed and succ not in path:
                    walk(succ, path + [succ])

        walk(start, [start])
    return found


# Cycles listed per group of modules that import each other (all of a
# group's modules are named anyway).
CYCLES_SHOWN = 50


def cycle_report(pkg: Package) -> str:
    """Each group of modules that import each other, with its cycles and the
    file and line of every import on them; empty when there is none."""
    edges: dict = {}  # (importer, imported) -> its Imports
    for imp in pkg.internal():
        if imp.module != imp.target:
            edges.setdefault((imp.module, imp.target), []).append(imp)
    graph: dict = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    groups = [c for c in _strongly_connected(graph) if len(c) > 1]
    lines = []
    for n, component in enumerate(groups, 1):
        lines.append(f"group {n}: {', '.join(sorted(component))} import each other")
        cycles = _cycles(graph, component, CYCLES_SHOWN)
        for cycle in cycles:
            lines.append("  " + " -> ".join(cycle))
            for a, b in zip(cycle, cycle[1:]):
                at = "; ".join(i.where() for i in edges[(a, b)])
                lines.append(f"      {a} -> {b}: {at}")
        if len(cycles) == CYCLES_SHOWN:
            lines.append("  ... (more cycles through these modules)")
    return "\n".join(lines)


def test_no_import_cycles(package):
    report = cycle_report(package)
    assert not report, (
        "import cycles inside fastsess (lazy imports count: they only hide a cycle until the "
        "function runs).  Break each by moving what both sides need into a module below "
        "them, or by passing it in, so imports run one way:\n" + report)


# -- drivers and integrations ------------------------------------------------------------


def _allowed(imp: Import) -> Allowed | None:
    top = imp.target.split(".")[0]
    for rule in ALLOWED:
        if _under(imp.module, rule.package) and top in rule.names \
                and (imp.lazy or not rule.lazy_only):
            return rule
    return None


def driver_import_violations(pkg: Package) -> list:
    out = []
    for imp in pkg.external():
        if _allowed(imp) is not None:
            continue
        top = imp.target.split(".")[0]
        if any(_under(imp.module, r.package) and top in r.names for r in ALLOWED):
            fix = "import it inside the function that needs it"
        else:
            places = [f"{r.package}{' (lazily)' if r.lazy_only else ''}"
                      for r in ALLOWED if top in r.names]
            fix = f"only {', '.join(places) or 'no module'} may import it"
            if top in DB_DRIVERS:
                fix += "; reach the database through a driver adapter"
        out.append(f"{imp.where()}: {imp.module} imports {imp.target} ({CHECKED[top]}): {fix}")
    return out


def test_drivers_and_integrations_are_imported_only_where_allowed(package):
    violations = driver_import_violations(package)
    allowed = "\n".join(f"  {r.package}: {', '.join(sorted(r.names))}"
                        f"{' (lazily)' if r.lazy_only else ''} -- {r.why}" for r in ALLOWED)
    assert not violations, (
        "driver / RESTAlchemy / SQLAlchemy imports outside the modules allowed to import them:\n"
        + "\n".join(violations) + "\nallowed (ALLOWED in tests/test_architecture.py):\n" + allowed)


def import_time_driver_violations(pkg: Package) -> list:
    """Modules outside the adapters that import a fastsess module which imports a
    driver at import time: their own import then needs the driver."""
    at_import: dict = {}
    for imp in pkg.imports:
        if not imp.lazy:
            at_import.setdefault(imp.module, []).append(imp)
    drivers_of: dict = {}  # module -> (driver Import, chain of modules) at import time

    def first_driver(module, seen):
        if module in drivers_of:
            return drivers_of[module]
        result = None
        for imp in at_import.get(module, ()):
            if imp.target.split(".")[0] in DB_DRIVERS:
                result = (imp, [module])
                break
            if imp.target in pkg.modules and imp.target not in seen:
                below = first_driver(imp.target, seen | {imp.target})
                if below is not None:
                    result = (below[0], [module, *below[1]])
                    break
        drivers_of[module] = result
        return result

    out = []
    for module in sorted(pkg.modules):
        if _under(module, "fastsess.drivers"):
            continue
        found = first_driver(module, {module})
        if found is not None and len(found[1]) > 1:
            driver, chain = found
            via = next(i for i in at_import[module] if i.target == chain[1])
            out.append(f"{via.where()}: {module} imports {chain[1]} at import time, which "
                       f"imports {driver.target} ({' -> '.join(chain)}; {driver.where()}): "
                       f"import {chain[1]} inside the function that needs it, or make "
                       f"{chain[-1]} import {driver.target} lazily")
    return out


def test_no_module_needs_a_driver_to_be_imported(package):
    # ``import fastsess`` (and each integration) must work with only one
    # database's driver installed: drivers load when an engine is made.
    violations = import_time_driver_violations(package)
    assert not violations, (
        "modules outside fastsess.drivers that pull a database driver in when they are "
        "imported:\n" + "\n".join(violations))


def leaf_violations(pkg: Package) -> list:
    out = []
    for imp in pkg.internal():
        target_leaf, source_leaf = _leaf_of(imp.target), _leaf_of(imp.module)
        if target_leaf is None or target_leaf == source_leaf:
            continue
        if source_leaf is None and imp.module in LEAF_ENTRY_POINTS:
            continue
        if source_leaf is not None and target_leaf in LEAF_IMPORTS.get(source_leaf, ()):
            continue
        who = f"the leaf {source_leaf}" if source_leaf else "the core"
        out.append(f"{imp.where()}: {imp.module} ({who}) imports {imp.target} "
                   f"({LEAVES[target_leaf]}): move what it needs into the core, "
                   f"or let the leaf hand it in")
    return out


def test_core_never_imports_the_leaves(package):
    violations = leaf_violations(package)
    assert not violations, (
        "imports of an integration (leaf) from fastsess's core or from another leaf:\n"
        + "\n".join(violations))


def kernel_violations(pkg: Package) -> list:
    out = []
    for imp in pkg.imports:
        if imp.module not in KERNELS or not _under(imp.target, "fastsess"):
            continue
        if imp.target not in KERNELS_MAY_IMPORT and imp.target != imp.module:
            out.append(f"{imp.where()}: the kernel {imp.module} imports {imp.target}: kernels "
                       f"import only {' and '.join(sorted(KERNELS_MAY_IMPORT))}; move what "
                       f"both implementations share into fastsess._kernels_common")
    return out


def test_kernels_import_only_errors_and_kernels_common(package):
    violations = kernel_violations(package)
    assert not violations, "kernels importing other parts of fastsess:\n" + "\n".join(violations)


# -- the checker itself, on a made-up package ------------------------------------------------


def test_the_checker_finds_lazy_cycles_and_misplaced_driver_imports(tmp_path):
    pkg = tmp_path / "fastsess"
    (pkg / "drivers").mkdir(parents=True)
    (pkg / "bench").mkdir()
    files = {
        "__init__.py": "from .a import A\n",
        "a.py": "from . import b\nA = 1\n",
        "b.py": "def later():\n    from .a import A\n    return A\n",
        "c.py": "from .drivers import pg\n",
        "drivers/__init__.py": "",
        "drivers/pg.py": "import psycopg\n",
        "bench/__init__.py": "import sqlalchemy\n\ndef run():\n    import psycopg\n",
        "d.py": "import typing\nif typing.TYPE_CHECKING:\n    from . import bench\n"
                "def f():\n    import fastsess.bench\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    scanned = scan(pkg, None)

    report = cycle_report(scanned)
    assert "fastsess.a -> fastsess.b -> fastsess.a" in report
    assert "fastsess/b.py:2 (lazy, in later)" in report
    assert "fastsess/a.py:1" in report
    # Allowed lazily in the bench, not at its import time.
    violations = driver_import_violations(scanned)
    assert len(violations) == 1 and "bench/__init__.py:1" in violations[0]
    assert "inside the function" in violations[0]
    # c needs psycopg at import time, through the adapter it imports.
    pulled = import_time_driver_violations(scanned)
    assert len(pulled) == 1 and "c.py:1: fastsess.c imports fastsess.drivers.pg" in pulled[0]
    # The TYPE_CHECKING import does not count; the lazy one does.
    leaves = leaf_violations(scanned)
    assert len(leaves) == 1 and ":5 (lazy, in f)" in leaves[0]


# -- in a real process: each database needs only its own driver ---------------------------

# Run first in each child interpreter.  ABSENT packages cannot be imported at
# all, as if not installed.  FROM_FASTSESS ones are installed but refused to
# fastsess's modules: RESTAlchemy 16 imports psycopg, psycopg_pool and
# mysql-connector itself (restalchemy.storage.sql.engines, sessions and
# dialects), so a drop-in process always has them, and what can be checked
# is that fastsess does not use the other database's driver.
_BLOCKER = """
import builtins, sys

ABSENT = {absent!r}
FROM_FASTSESS = {from_fastsess!r}


def _top(name):
    return name.partition(".")[0]


class Absent:
    def find_spec(self, name, path=None, target=None):
        if _top(name) in ABSENT:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
        return None


sys.meta_path.insert(0, Absent())
_import = builtins.__import__


def _guarded(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {{}}).get("__name__") or ""
    if level == 0 and _top(name) in FROM_FASTSESS and _top(importer) == "fastsess":
        raise ImportError(f"{{importer}} imported {{name}} (blocked)")
    return _import(name, globals, locals, fromlist, level)


builtins.__import__ = _guarded
"""

# dialect -> (the other database's packages, fastsess's adapter module for it)
_OTHER = {
    "postgresql": ({"MySQLdb", "mysql"}, "fastsess.drivers.mysql"),
    "mysql": ({"psycopg", "psycopg_c", "psycopg_pool"}, "fastsess.drivers.postgresql"),
}


def _run_without(absent, from_fastsess, code):
    """Run ``code`` in a fresh interpreter that blocks the given imports;
    fails the test with its output unless it exits cleanly."""
    program = _BLOCKER.format(absent=sorted(absent), from_fastsess=sorted(from_fastsess)) \
        + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), done.stderr


def test_fastsess_needs_only_the_driver_of_its_database(dialect):
    other, adapter = _OTHER[dialect]
    table = f"arch_{uuid.uuid4().hex[:12]}"
    _run_without(other, (), f"""
        import sys
        import fastsess

        engine = fastsess.create_engine({URLS[dialect]!r}, max_size=1)
        with engine.session_manager() as s:
            s.execute("CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR(20))")
        try:
            with engine.session_manager() as s:
                s.execute("INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "one"))
            with engine.session_manager() as s:
                assert s.execute("SELECT id, name FROM {table}").fetchall() == \\
                    [{{"id": 1, "name": "one"}}]
        finally:
            with engine.session_manager() as s:
                s.execute("DROP TABLE {table}")
            engine.close()
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {sorted(other)!r})
        assert not loaded and {adapter!r} not in sys.modules, loaded
    """)


def test_restalchemy_drop_in_needs_only_the_driver_of_its_database(dialect):
    pytest.importorskip("restalchemy")
    other, adapter = _OTHER[dialect]
    # RESTAlchemy imports mysql-connector and psycopg itself; mysqlclient
    # (fastsess's MySQL driver) it does not, so that one can be really absent.
    absent = other & {"MySQLdb"}
    table = f"arch_{uuid.uuid4().hex[:12]}"
    engine_class, config, error_module, error_name = {
        "postgresql": ("PgSQLEngine", {"min_size": 0, "max_size": 1},
                       "psycopg.errors", "UniqueViolation"),
        "mysql": ("MySQLEngine", {"pool_size": 1}, "mysql.connector.errors", "IntegrityError"),
    }[dialect]
    _run_without(absent, other, f"""
        import sys
        import fastsess.restalchemy

        fastsess.restalchemy.install()
        from restalchemy.storage.sql import engines
        from {error_module} import {error_name} as StockDuplicateKey

        # install() replaced both engine classes and loaded neither adapter.
        assert engines.PgSQLEngine.__module__ == engines.MySQLEngine.__module__ \\
            == "fastsess.restalchemy.engines"
        assert not {{"fastsess.drivers.postgresql", "fastsess.drivers.mysql"}} & set(sys.modules)

        engine = engines.{engine_class}({URLS[dialect]!r}, config={config!r})
        with engine.session_manager() as s:
            s.execute("CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR(20))")
        try:
            with engine.session_manager() as s:
                s.execute("INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "one"))
            try:  # translated into the class the stock driver raises
                with engine.session_manager() as s:
                    s.execute("INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "again"))
            except StockDuplicateKey:
                pass
            else:
                raise AssertionError("a duplicate key was accepted")
            with engine.session_manager() as s:
                assert s.execute("SELECT id, name FROM {table}").fetchall() == \\
                    [{{"id": 1, "name": "one"}}]
        finally:
            with engine.session_manager() as s:
                s.execute("DROP TABLE {table}")
            engine.close()
        assert {adapter!r} not in sys.modules
    """)
