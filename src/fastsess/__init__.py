"""fastsess: a Cython-accelerated database session core for PostgreSQL and MySQL."""

from __future__ import annotations

from . import errors
from ._impl import __impl__
from .cache import SessionQueryCache
from .engine import Engine, create_engine
from .registry import (EngineFactory, configure_factory, destroy_all_engines, destroy_engine,
                       engine_factory, get_engine)
from .result import Result
from .scope import session_manager
from .session import Session
from .storage import SessionConflict, SessionNotFound, SessionThreadStorage
from .url import DatabaseURL

__version__ = "0.1.0"

__all__ = [
    "__impl__", "__version__", "errors", "Engine", "EngineFactory", "DatabaseURL", "Result",
    "Session", "SessionQueryCache", "SessionThreadStorage", "SessionConflict", "SessionNotFound",
    "configure_factory", "create_engine", "destroy_all_engines", "destroy_engine",
    "engine_factory", "get_engine", "session_manager",
]
