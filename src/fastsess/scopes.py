"""Transaction scopes: ``session_scope`` (a with block), ``with_session`` (a
decorator that injects the session), ``retrying`` (re-runnable blocks),
``current_session``, and ``configure_session``, their defaults.
(``session_manager``, the RESTAlchemy scope, is in ``fastsess.session``;
``atomic`` in ``fastsess.atomic``.)

A scope opens a session only when none is current for its engine in the
running task or thread; it then makes it current (so nested scopes,
``atomic`` blocks and ``engine.session_manager()`` reuse it), commits when
the block succeeds (``auto_commit``), rolls back when it raises
(``auto_rollback``, then re-raises), and always closes it.  A nested scope
yields the current session untouched: the scope that opened it commits.
Which child tasks and threads see a current session: ``fastsess.current``.

Options default to ``configure_session``'s values, read on each entry;
a value given to one scope overrides them for that scope only:

- ``using``: an engine name in the registry (default ``"default"``) or an Engine;
- ``auto_commit`` [True]: commit at the end; when False, what the block did
  not commit itself (``session.commit()``) is rolled back at close;
- ``auto_rollback`` [True]: roll back when the block raises; when False the
  scope skips its ROLLBACK, but closing the session still discards the
  uncommitted work (a connection never goes back to the pool mid-transaction);
- ``readonly`` [False]: begin the transaction with ``SET TRANSACTION READ
  ONLY`` (writes then fail with ``ReadOnlyViolation``); applies only to a
  scope that opens its session, a nested scope joins the enclosing
  transaction as it is;
- retry options (``retry_attempts``, ``retry_delay``, ``retry_max_delay``):
  ``with_session`` and ``retrying`` only, see ``fastsess.retry``.
"""

from __future__ import annotations

import functools
import inspect
import logging

from . import config, monitoring
from .atomic import (_check_plain_function, finish_session, finish_session_async, open_session,
                     open_session_async)
from .config import settings
from .current import SESSION, current, lookup, pop, push
from .errors import SessionNotFound
from .registry import current_for, resolve_async_engine, resolve_engine
from .retry import RetryPolicy, Retrying
from .session import Session
from .session_async import AsyncSession

_IDLE = object()  # a scope's _held before it is entered and after it exits


class _Scope:
    """What ``session_scope`` and ``async_session_scope`` share: the options
    and the decisions of entering and leaving; the shells do the I/O."""

    __slots__ = ("_session", "_using", "_auto_commit", "_auto_rollback", "_readonly", "_record",
                 "_held")
    _what = "session_scope"

    def __init__(self, using=None, *, session=None, auto_commit=None, auto_rollback=None,
                 readonly=False, **options):
        if options:
            if any(name.startswith("retry_") for name in options):
                raise TypeError(f"{self._what} is a with block, which cannot run itself again: "
                                "use a decorator's retry_attempts=..., retrying() or with_retry()")
            raise TypeError(f"{self._what}() got unexpected keyword argument(s) "
                            f"{', '.join(sorted(options))}")
        self._session = session
        self._using = using
        self._auto_commit = auto_commit
        self._auto_rollback = auto_rollback
        self._readonly = readonly
        self._record = None  # set by retrying(): tells the retry loop what happened
        self._held = _IDLE

    def _join(self, resolve):
        """Entering: (the session to yield, None) when the scope joins a given
        or current session, else (None, the engine to open one for)."""
        if self._held is not _IDLE:
            raise RuntimeError(f"this {self._what} is already in use; make one per with statement")
        session = self._session
        if session is not None:
            engine = session._engine
            frame = lookup(engine)
            if frame is not None and frame[SESSION] is session:
                self._held = None
            else:
                self._held = (None, push(engine, session))
            return session, None
        engine = resolve(self._using)
        found = current(engine)
        if found is not None:
            self._held = None
            return found, None
        return None, engine

    def _leave(self, exc_type):
        """Leaving: None when there is nothing to finish, else the arguments
        of ``finish_session``."""
        held = self._held
        self._held = _IDLE
        if held is None:
            return None
        session, pushed = held
        if session is None:
            pop(pushed)
            return None
        auto_commit = settings.auto_commit if self._auto_commit is None else self._auto_commit
        auto_rollback = settings.auto_rollback if self._auto_rollback is None else self._auto_rollback
        return session, pushed, exc_type is not None, auto_commit, auto_rollback


class session_scope(_Scope):
    """``with session_scope(using=None, *, auto_commit=None, auto_rollback=None,
    readonly=False, session=None) as session:`` (see the module docstring).

    ``session_scope(session=s)`` makes a session of your own current for the
    block (nested scopes and ``atomic`` blocks then use it) and leaves it
    untouched: you commit and close it.  One scope object serves one
    ``with`` statement at a time.
    """

    __slots__ = ()

    def __enter__(self):
        session, engine = self._join(resolve_engine)
        if engine is not None:
            self._held = open_session(engine, self._readonly, self._record)
            session = self._held[0]
        return session

    def __exit__(self, exc_type, exc, tb):
        finishing = self._leave(exc_type)
        if finishing is not None:
            finish_session(*finishing)
        return False


class async_session_scope(_Scope):
    """``async with async_session_scope(using=None, *, auto_commit=None,
    auto_rollback=None, readonly=False, session=None) as session:`` — the
    async twin of ``session_scope`` (``using``: a registered name, whose
    async engine is used, or an AsyncEngine)."""

    __slots__ = ()
    _what = "async_session_scope"

    async def __aenter__(self):
        session, engine = self._join(resolve_async_engine)
        if engine is not None:
            self._held = await open_session_async(engine, self._readonly, self._record)
            session = self._held[0]
        return session

    async def __aexit__(self, exc_type, exc, tb):
        finishing = self._leave(exc_type)
        if finishing is not None:
            await finish_session_async(*finishing)
        return False


def _session_parameter(func, session_arg):
    """(name, position or None, the signature callers see or None) of the
    parameter that receives the session."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # no signature (some builtins): first positional
        return session_arg or "session", 0 if session_arg is None else None, None
    params = list(signature.parameters.values())
    name, index = _find_parameter(func, params, session_arg)
    outside = signature.replace(parameters=[p for p in params if p.name != name])
    return name, index, outside


def _find_parameter(func, params, session_arg):
    if session_arg is None:
        named = [p for p in params if p.name == "session"]
        if named:
            session_arg = "session"
        elif params and params[0].kind in (inspect.Parameter.POSITIONAL_ONLY,
                                           inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                           inspect.Parameter.VAR_POSITIONAL):
            return params[0].name, 0
        else:
            raise TypeError(f"with_session cannot inject a session into {func.__qualname__}: "
                            "it takes no positional parameter; name one with session_arg=")
    for i, p in enumerate(params):
        if p.name == session_arg:
            if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                          inspect.Parameter.POSITIONAL_OR_KEYWORD):
                return session_arg, i
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                return session_arg, None
            break
    else:
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return session_arg, None
    raise TypeError(f"with_session cannot inject a session into {func.__qualname__}: "
                    f"it has no parameter {session_arg!r} that takes one value")


def with_session(func=None, *, using=None, session_arg=None, auto_commit=None,
                 auto_rollback=None, readonly=False, retry_attempts=None, retry_delay=None,
                 retry_max_delay=None):
    """Decorator: call the function inside a ``session_scope`` and pass it the session.

    ``@with_session`` or ``@with_session(...)`` with the scope options of the
    module docstring.  The session goes to the parameter ``session_arg``;
    by default the one named ``session``, else the first parameter
    (``def f(session, x)`` is called ``f(x)``; a method ``def m(self,
    session, x)`` is called ``obj.m(x)``).

    A caller that passes its own session — by keyword, or as a ``Session``
    in that position — gets it used as it is: made current for the call
    (nested scopes use it), neither committed nor closed nor retried.
    ``session=None`` counts as not passed.

    Retries (``retry_attempts`` etc., default: the ``configure_session``
    values): when the call began the transaction and failed with a retryable
    error, it is run again from scratch with a new session; see
    ``fastsess.retry`` for when that is safe.
    """
    policy = RetryPolicy(retry_attempts, retry_delay, retry_max_delay)

    def decorate(fn):
        _check_plain_function(fn, "with_session")
        injector = _Injector(fn, session_arg, Session)

        call = injector.call
        index = injector.index

        def run(record, args, kwargs):
            """One run of the unit in a scope (session_scope's body, inlined:
            this is the per-request path of a decorated function)."""
            engine = resolve_engine(using)
            session = current(engine)
            if session is not None:  # nested: the enclosing scope owns the transaction
                return call(session, args, kwargs)
            session, pushed = open_session(engine, readonly, record)
            try:
                result = call(session, args, kwargs)
            except BaseException:
                finish_session(session, pushed, True, False,
                               settings.auto_rollback if auto_rollback is None else auto_rollback)
                raise
            finish_session(session, pushed, False,
                           settings.auto_commit if auto_commit is None else auto_commit, False)
            return result

        @functools.wraps(fn)
        def with_session_call(*args, **kwargs):
            if kwargs or (index is not None and len(args) > index):
                given, args = injector.given(args, kwargs)
                if given is not None:
                    with session_scope(session=given):
                        return call(given, args, kwargs)
            # (call() sets the session in kwargs, this call's own dict: a
            # retry overwrites it with the next attempt's session)
            return policy.run(lambda record: run(record, args, kwargs), injector.what)

        return injector.wrapped(with_session_call)

    return decorate(func) if func is not None else decorate


def async_with_session(func=None, *, using=None, session_arg=None, auto_commit=None,
                       auto_rollback=None, readonly=False, retry_attempts=None,
                       retry_delay=None, retry_max_delay=None):
    """``with_session`` for coroutine functions: ``@async_with_session()``
    runs the call inside an ``async_session_scope`` and passes it the
    ``AsyncSession`` (the same options and rules; a retry never follows a
    cancellation)."""
    policy = RetryPolicy(retry_attempts, retry_delay, retry_max_delay)

    def decorate(fn):
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"async_with_session decorates a coroutine function, got {fn!r}")
        injector = _Injector(fn, session_arg, AsyncSession)

        async def run(record, args, kwargs):
            scope = async_session_scope(using, auto_commit=auto_commit,
                                        auto_rollback=auto_rollback, readonly=readonly)
            scope._record = record
            async with scope as session:
                return await injector.call(session, args, kwargs)

        @functools.wraps(fn)
        async def with_session_call(*args, **kwargs):
            given, args = injector.given(args, kwargs)
            if given is not None:
                async with async_session_scope(session=given):
                    return await injector.call(given, args, kwargs)
            return await policy.run_async(lambda record: run(record, args, kwargs),
                                          injector.what)

        return injector.wrapped(with_session_call)

    return decorate(func) if func is not None else decorate


class _Injector:
    """Where a ``with_session`` function takes its session, and the calls
    that put it there."""

    __slots__ = ("fn", "name", "index", "outside", "what", "session_class")

    def __init__(self, fn, session_arg, session_class):
        self.fn = fn
        self.name, self.index, self.outside = _session_parameter(fn, session_arg)
        self.what = getattr(fn, "__qualname__", repr(fn))
        self.session_class = session_class

    def call(self, session, args, kwargs):
        fn, index = self.fn, self.index
        if index is None or len(args) < index:
            kwargs[self.name] = session
            return fn(*args, **kwargs)
        if index == 0:
            return fn(session, *args, **kwargs)
        return fn(*args[:index], session, *args[index:], **kwargs)

    def given(self, args, kwargs):
        """(the session the caller passed or None, the other arguments)."""
        if kwargs:
            given = kwargs.pop(self.name, None)
            if given is not None:  # placed where an injected one would go
                return given, args
        index = self.index
        if index is not None and len(args) > index and isinstance(args[index], self.session_class):
            return args[index], args[:index] + args[index + 1:]
        return None, args

    def wrapped(self, wrapper):
        if self.outside is not None:  # what callers pass: the session is optional
            wrapper.__signature__ = self.outside
        return wrapper


def retrying(using=None, *, retry_attempts=None, retry_delay=None, retry_max_delay=None,
             auto_commit=None, auto_rollback=None, readonly=False) -> Retrying:
    """Attempts of an inline unit of work, each a ``session_scope``::

        for attempt in fastsess.retrying(retry_attempts=3):
            with attempt as session:
                session.execute(...)

    ``retry_attempts`` defaults to the ``configure_session`` value (0: one
    attempt).  See ``fastsess.retry.Retrying`` and the retry rules in
    ``fastsess.retry``.
    """
    policy = RetryPolicy(retry_attempts, retry_delay, retry_max_delay)

    def open_scope(record):
        scope = session_scope(using=using, auto_commit=auto_commit, auto_rollback=auto_rollback,
                              readonly=readonly)
        scope._record = record
        return scope

    return Retrying(open_scope, policy)


def current_session(using=None):
    """The session scopes in this task or thread would reuse for ``using``
    (a name: its sync engine's, else its async engine's; see
    ``fastsess.current``); ``SessionNotFound`` when there is none."""
    session = current_for(using)
    if session is None:
        name = using if isinstance(using, str) else getattr(using, "name", "default")
        raise SessionNotFound(
            f"no session is current for engine {name!r} in this task or thread; "
            "open one with session_scope(), with_session, atomic() or their async twins")
    return session


def configure_session(**options) -> dict:
    """Set the defaults of the session scopes; returns all of them.

    Options (defaults in brackets): ``auto_commit`` [True], ``auto_rollback``
    [True], ``enable_monitoring`` [False]: commit/rollback latency
    percentiles in ``get_session_stats()``, ``log_level`` [None]: a level
    name or number set on the ``fastsess`` logger (``"DEBUG"`` logs every
    statement on the ``fastsess.statements`` logger), ``log_parameters``
    [False]: show parameter values in that log instead of redacting them,
    ``retry_attempts`` [0]: how many times a unit of work that failed with a
    retryable error is run again (see ``fastsess.retry``), ``retry_delay``
    [0.1 s] and ``retry_max_delay`` [2.0 s]: the backoff, ``track_leaks``
    [False] and ``leak_threshold`` [None]: leak warnings (see
    ``fastsess.monitoring``).  Unknown names raise ``TypeError``; bad values
    ``ValueError`` (nothing is changed then).
    """
    with config.lock:
        changed = config.update(options)
        if "log_level" in changed and changed["log_level"] is not None:
            logging.getLogger("fastsess").setLevel(changed["log_level"])
        if changed.keys() & {"enable_monitoring", "track_leaks", "leak_threshold"}:
            monitoring._apply(settings)
        return settings.as_dict()
