"""RESTAlchemy 16.x on fastsess: ``fastsess.restalchemy.install()``.

After ``install()``, RESTAlchemy's ``engine_factory.configure_factory(...)``
(and ``engines.PgSQLEngine(...)`` / ``engines.MySQLEngine(...)`` built
directly) make fastsess-backed engines (``fastsess.restalchemy.engines``):
RESTAlchemy's models, filters, migrations, contexts and API middleware run on
fastsess sessions unchanged, on PostgreSQL (psycopg) and MySQL/MariaDB
(mysqlclient).  ``uninstall()`` puts RESTAlchemy back exactly as it was;
``installed()`` says which is in effect.

What ``install()`` changes, and all ``uninstall()`` restores: the
``PgSQLEngine`` and ``MySQLEngine`` names of
``restalchemy.storage.sql.engines`` and the two matching entries of its
``engine_factory``'s scheme map, and two read-path functions of its ORM
(``fastsess.restalchemy.orm``: same results, fewer Python calls per row).
Engines made before ``install()`` stay stock; engines made while installed
stay fastsess-backed (and keep working) after ``uninstall()``.  Code that
took ``PgSQLEngine`` by name (``from ... import PgSQLEngine``) before
``install()`` keeps the stock class.

``install()`` is idempotent, thread-safe, prints nothing, and may be called
before or after RESTAlchemy is imported (it imports what it patches).  This
package is a leaf: ``import fastsess`` never imports it, and importing it
does not import RESTAlchemy.  ``install()`` imports no database driver for
fastsess: each drop-in engine class imports its own when an engine is made
(RESTAlchemy 16's engines module itself imports psycopg, psycopg_pool and
mysql-connector).
"""

from __future__ import annotations

import threading

from ..errors import FastsessError

__all__ = ["install", "uninstall", "installed", "RESTAlchemyUnavailable"]

# The major version this integration is written against.
SUPPORTED_MAJOR = 16


class RESTAlchemyUnavailable(FastsessError, ImportError):
    """RESTAlchemy is not installed, or is not a version ``install()`` supports."""


_lock = threading.Lock()
# While installed: (module, {name: stock class}, factory, {scheme: stock entry}).
_saved = None


def _restalchemy_engines():
    """RESTAlchemy's engines module, after checking the version."""
    try:
        from restalchemy.storage.sql import engines
    except ImportError as e:
        raise RESTAlchemyUnavailable(
            f"fastsess.restalchemy.install() needs RESTAlchemy {SUPPORTED_MAJOR}.x "
            f"(pip install 'restalchemy>={SUPPORTED_MAJOR},<{SUPPORTED_MAJOR + 1}'): {e}") from e
    from importlib import metadata

    try:
        version = metadata.version("restalchemy")
    except metadata.PackageNotFoundError:
        version = None  # vendored: the checks below decide
    if version is not None and version.split(".")[0] != str(SUPPORTED_MAJOR):
        raise RESTAlchemyUnavailable(
            f"fastsess.restalchemy supports RESTAlchemy {SUPPORTED_MAJOR}.x, found {version}")
    factory = getattr(engines, "engine_factory", None)
    if not isinstance(getattr(factory, "_engines_map", None), dict) \
            or not hasattr(engines, "PgSQLEngine") or not hasattr(engines, "MySQLEngine"):
        raise RESTAlchemyUnavailable(
            "restalchemy.storage.sql.engines does not look like RESTAlchemy "
            f"{SUPPORTED_MAJOR}.x (no engine_factory scheme map or engine classes)")
    return engines


def install() -> None:
    """Make RESTAlchemy build fastsess-backed engines (see the module
    docstring).  Idempotent; raises ``RESTAlchemyUnavailable`` when
    RESTAlchemy 16.x cannot be imported."""
    global _saved
    with _lock:
        if _saved is not None:
            return
        module = _restalchemy_engines()
        from . import engines as ours  # imports the stock classes it derives from
        from . import orm

        replacements = {"PgSQLEngine": ours.PgSQLEngine, "MySQLEngine": ours.MySQLEngine}
        stock_classes = {name: getattr(module, name) for name in replacements}
        factory = module.engine_factory
        scheme_map = factory._engines_map
        stock_entries = {}
        for cls in replacements.values():
            scheme = cls.URL_SCHEMA
            stock_entries[scheme] = scheme_map.get(scheme, _MISSING)
        for name, cls in replacements.items():
            setattr(module, name, cls)
            scheme_map[cls.URL_SCHEMA] = cls
        orm.apply()
        _saved = (module, stock_classes, factory, stock_entries)


def uninstall() -> None:
    """Put RESTAlchemy back exactly as ``install()`` found it.  A no-op when
    not installed."""
    global _saved
    with _lock:
        if _saved is None:
            return
        module, stock_classes, factory, stock_entries = _saved
        for name, cls in stock_classes.items():
            setattr(module, name, cls)
        scheme_map = factory._engines_map
        for scheme, entry in stock_entries.items():
            if entry is _MISSING:
                scheme_map.pop(scheme, None)
            else:
                scheme_map[scheme] = entry
        from . import orm

        orm.revert()
        _saved = None


def installed() -> bool:
    """Whether ``install()`` is in effect."""
    return _saved is not None


_MISSING = object()
