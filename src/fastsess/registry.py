"""Named engines, with the calls of RESTAlchemy's ``engine_factory``.

A name serves both modes: ``configure_factory(url, name=...)`` registers the
settings, ``get_engine(name)`` is its sync engine and ``get_async_engine(name)``
its async one, made from the same URL and options when first asked for.
"""

from __future__ import annotations

import threading

from .current import current
from .engine import AsyncEngine, Engine
from .errors import EngineNotFound

DEFAULT_NAME = "default"


class EngineFactory:
    """name -> engine.  ``configure_factory`` replaces (and closes) an engine
    already registered under the same name."""

    def __init__(self):
        self._engines: dict[str, Engine] = {}
        self._async: dict[str, AsyncEngine] = {}  # made on demand from _settings
        self._settings: dict[str, tuple] = {}  # name -> (url, options) for get_async_engine
        self._lock = threading.Lock()

    def configure_factory(self, db_url, config=None, query_cache=False, name=DEFAULT_NAME,
                          readonly=False) -> Engine:
        config = dict(config or {})
        connect_args = config.pop("kwargs", None)  # psycopg_pool's name for them
        config.pop("name", None)  # psycopg_pool's pool name, not the engine's
        options = dict(config, query_cache=query_cache, readonly=readonly,
                       connect_args=connect_args, name=name)
        engine = Engine(db_url, **options)
        with self._lock:
            old = self._engines.get(name)
            old_async = self._async.pop(name, None)
            self._engines[name] = engine
            self._settings[name] = (db_url, options)
        if old is not None:
            old.close()
        if old_async is not None:
            old_async._pool.close_now()
        return engine

    def get_engine(self, name=DEFAULT_NAME) -> Engine:
        engine = self._engines.get(name)
        if engine is None:
            known = ", ".join(sorted(self._engines)) or "none"
            raise EngineNotFound(
                f"no engine named {name!r} is configured (configured: {known}); "
                "call configure_factory() first")
        return engine

    def get_async_engine(self, name=DEFAULT_NAME) -> AsyncEngine:
        """The async engine of ``name``: the same URL and options as its
        sync engine (made on first use)."""
        engine = self._async.get(name)
        if engine is not None:
            return engine
        with self._lock:
            engine = self._async.get(name)
            if engine is None:
                settings = self._settings.get(name)
                if settings is None:
                    self.get_engine(name)  # raises EngineNotFound with the names known
                    raise EngineNotFound(f"engine {name!r} was not made by configure_factory; "
                                         "it has no async twin")
                url, options = settings
                engine = self._async[name] = AsyncEngine(url, **options)
        return engine

    def destroy_engine(self, name=DEFAULT_NAME) -> None:
        with self._lock:
            engine = self._engines.pop(name, None)
            async_engine = self._async.pop(name, None)
            self._settings.pop(name, None)
        if engine is not None:
            engine.close()
        if async_engine is not None:
            async_engine._pool.close_now()

    def destroy_all_engines(self) -> None:
        with self._lock:
            engines = list(self._engines.values()) + list(self._async.values())
            self._engines.clear()
            self._async.clear()
            self._settings.clear()
        for engine in engines:
            if isinstance(engine, AsyncEngine):
                engine._pool.close_now()  # (its close() is a coroutine; this one does not wait)
            else:
                engine.close()

    def names(self) -> list:
        return sorted(self._engines)


engine_factory = EngineFactory()
configure_factory = engine_factory.configure_factory
get_engine = engine_factory.get_engine
get_async_engine = engine_factory.get_async_engine
destroy_engine = engine_factory.destroy_engine
destroy_all_engines = engine_factory.destroy_all_engines


def resolve_engine(using):
    """The engine ``using`` names: None (the "default" engine of the
    registry), a registered name, or an Engine."""
    return _resolve(using, engine_factory.get_engine, Engine, AsyncEngine)


def resolve_async_engine(using):
    """The async engine ``using`` names: None (the "default" name), a
    registered name (its async twin), or an AsyncEngine."""
    return _resolve(using, engine_factory.get_async_engine, AsyncEngine, Engine)


def _resolve(using, by_name, cls, other):
    if using is None:
        return by_name(DEFAULT_NAME)
    if type(using) is str:
        return by_name(using)
    if isinstance(using, cls):
        return using
    if isinstance(using, other):
        mode = "an async" if cls is AsyncEngine else "a sync"
        raise TypeError(f"using is an {other.__name__}: {mode} scope needs an "
                        f"{cls.__name__} or a registered name")
    raise TypeError(f"using must be an engine name or an {cls.__name__}, "
                    f"got {type(using).__name__}")


def current_for(using):
    """The session current in this task or thread for ``using``: an Engine
    or AsyncEngine, or a name (None: "default"), whose sync engine's current
    session is looked for first, then its async engine's; or None."""
    if isinstance(using, (Engine, AsyncEngine)):
        return current(using)
    found = current(resolve_engine(using))
    if found is None:
        async_engine = engine_factory._async.get(DEFAULT_NAME if using is None else using)
        if async_engine is not None:
            found = current(async_engine)
    return found
