"""fastsess: a Cython-accelerated database session core for PostgreSQL and MySQL."""

from __future__ import annotations

from . import _impl
from ._impl import __impl__  # first: it decides where the compiled modules load from
from . import errors
from .atomic import async_atomic, atomic, in_atomic_block, on_commit
from .cache import SessionQueryCache
from .config import get_session_config
from .current import SessionContextStorage, SessionThreadStorage
from .engine import AsyncEngine, Engine, create_async_engine, create_engine
from .errors import (SessionConflict, SessionNotFound, TransactionAborted,
                     TransactionManagementError)
from .monitoring import check_sessions, get_session_stats, reset_session_stats
from .params import Json
from .registry import (EngineFactory, configure_factory, destroy_all_engines, destroy_engine,
                       engine_factory, get_async_engine, get_engine)
from .result import Result
from .retry import async_with_retry, is_retryable, with_retry
from .scopes import (async_session_scope, async_with_session, configure_session, current_session,
                     retrying, session_scope, with_session)
from .session import Session, session_manager
from .session_async import AsyncSession
from .url import DatabaseURL

__version__ = "0.1.0"

_impl.check_compiled()  # every compiled module is imported by now

__all__ = [
    "__impl__", "__version__", "errors", "Engine", "EngineFactory", "DatabaseURL", "Result",
    "Session", "SessionQueryCache", "SessionThreadStorage", "SessionConflict", "SessionNotFound",
    "configure_factory", "create_engine", "destroy_all_engines", "destroy_engine",
    "engine_factory", "get_engine", "session_manager",
    # transactions and scopes (issue 6)
    "atomic", "on_commit", "in_atomic_block", "TransactionAborted", "TransactionManagementError",
    "session_scope", "with_session", "retrying", "is_retryable", "current_session",
    "SessionContextStorage", "configure_session", "get_session_config", "get_session_stats",
    "reset_session_stats", "check_sessions",
    # parameters both databases take the same way (issue 10)
    "Json",
    # async engines, sessions and scopes (issue 12)
    "AsyncEngine", "AsyncSession", "create_async_engine", "get_async_engine",
    "async_session_scope", "async_with_session", "async_atomic", "async_with_retry",
    "with_retry",
]
