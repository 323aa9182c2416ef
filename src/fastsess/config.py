"""Process-wide defaults of the session scopes, as data: ``settings``, set
by ``fastsess.configure_session`` (``fastsess.scopes``), read with
``get_session_config()``.

``session_scope``, ``with_session``, ``atomic`` and ``retrying`` read these
at each call, so a change applies to scopes entered afterwards (also by
functions decorated before the change).  A value passed to one call
overrides the default for that call only.
"""

from __future__ import annotations

import math
import threading

_LEVELS = {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET"}


class SessionSettings:
    """The current defaults; read them with ``get_session_config()``."""

    __slots__ = ("auto_commit", "auto_rollback", "enable_monitoring", "log_level",
                 "log_parameters", "retry_attempts", "retry_delay", "retry_max_delay",
                 "track_leaks", "leak_threshold")

    def __init__(self):
        #: Commit when a scope's block succeeds.
        self.auto_commit = True
        #: Roll back when a scope's block raises.
        self.auto_rollback = True
        #: Commit/rollback latency percentiles (counters are always kept).
        self.enable_monitoring = False
        #: Level set on the "fastsess" logger by configure_session (None: untouched).
        self.log_level = None
        #: Show parameter values in the DEBUG statement log (default: redacted).
        self.log_parameters = False
        #: Times a failed unit of work is run again (0: never).
        self.retry_attempts = 0
        #: Seconds before the first retry; doubles for each further one.
        self.retry_delay = 0.1
        #: Upper bound of one retry's wait, in seconds.
        self.retry_max_delay = 2.0
        #: Warn about sessions collected without close(), naming where they were opened.
        self.track_leaks = False
        #: With track_leaks: warn about sessions held open longer than this (seconds; None: never).
        self.leak_threshold = None

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


settings = SessionSettings()
DEFAULTS = SessionSettings().as_dict()
#: Held while the settings change.
lock = threading.Lock()


def update(options: dict) -> dict:
    """Check ``options`` (all or none: unknown names raise ``TypeError``, bad
    values ``ValueError``) and set them; returns the checked values.  The
    caller holds ``lock`` (``fastsess.scopes.configure_session`` also
    applies the logging and monitoring side of them)."""
    unknown = set(options) - set(SessionSettings.__slots__)
    if unknown:
        raise TypeError(f"unknown session option(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(SessionSettings.__slots__)}")
    checked = {name: _check(name, value) for name, value in options.items()}
    for name, value in checked.items():
        setattr(settings, name, value)
    return checked


def get_session_config() -> dict:
    """The current defaults, by name (a copy)."""
    return settings.as_dict()


def _check(name, value):
    if name in ("auto_commit", "auto_rollback", "enable_monitoring", "log_parameters",
                "track_leaks"):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
        return value
    if name == "retry_attempts":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"retry_attempts must be an int >= 0, got {value!r}")
        return value
    if name in ("retry_delay", "retry_max_delay"):
        return check_seconds(name, value)
    if name == "leak_threshold":
        return None if value is None else check_seconds(name, value)
    # log_level
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and value.upper() in _LEVELS:
        return value.upper()
    raise ValueError(f"log_level must be None, a level number or one of {sorted(_LEVELS)}, "
                     f"got {value!r}")


def check_seconds(name, value) -> float:
    """``value`` as a number of seconds >= 0, or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)
