"""Named engines, with the calls of RESTAlchemy's ``engine_factory``."""

from __future__ import annotations

import threading

from .engine import Engine
from .errors import EngineNotFound

DEFAULT_NAME = "default"


class EngineFactory:
    """name -> engine.  ``configure_factory`` replaces (and closes) an engine
    already registered under the same name."""

    def __init__(self):
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def configure_factory(self, db_url, config=None, query_cache=False, name=DEFAULT_NAME,
                          readonly=False) -> Engine:
        config = dict(config or {})
        connect_args = config.pop("kwargs", None)  # psycopg_pool's name for them
        config.pop("name", None)  # psycopg_pool's pool name, not the engine's
        engine = Engine(db_url, query_cache=query_cache, readonly=readonly,
                        connect_args=connect_args, name=name, **config)
        with self._lock:
            old = self._engines.get(name)
            self._engines[name] = engine
        if old is not None:
            old.close()
        return engine

    def get_engine(self, name=DEFAULT_NAME) -> Engine:
        engine = self._engines.get(name)
        if engine is None:
            known = ", ".join(sorted(self._engines)) or "none"
            raise EngineNotFound(
                f"no engine named {name!r} is configured (configured: {known}); "
                "call configure_factory() first")
        return engine

    def destroy_engine(self, name=DEFAULT_NAME) -> None:
        with self._lock:
            engine = self._engines.pop(name, None)
        if engine is not None:
            engine.close()

    def destroy_all_engines(self) -> None:
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
        for engine in engines:
            engine.close()

    def names(self) -> list:
        return sorted(self._engines)


engine_factory = EngineFactory()
configure_factory = engine_factory.configure_factory
get_engine = engine_factory.get_engine
destroy_engine = engine_factory.destroy_engine
destroy_all_engines = engine_factory.destroy_all_engines


def resolve_engine(using):
    """The engine ``using`` names: None (the "default" engine of the
    registry), a registered name, or an Engine."""
    if using is None:
        return engine_factory.get_engine(DEFAULT_NAME)
    if type(using) is str:
        return engine_factory.get_engine(using)
    if isinstance(using, Engine):
        return using
    raise TypeError(f"using must be an engine name or an Engine, got {type(using).__name__}")
