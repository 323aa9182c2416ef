"""What the compiled kernels (``fastsess._speedups``) and their pure-Python
twin (``fastsess._speedups_py``) share.

Only what both must agree on and neither does faster by itself: constants,
the check of the kernels' limit arguments, and the cache-key encoding's
rare path (class introspection, plain Python by nature).  The compiled
module reads the constants once at import and calls into this module only
to refuse an argument or to encode a value of a type it does not know.  It
imports nothing of fastsess: both kernel modules import it.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import re

# -- identifiers ------------------------------------------------------------------

#: Dialect names the statement builders understand, with their identifier quote.
QUOTES = {"postgresql": '"', "mysql": "`"}
#: Longest identifier each server keeps (PostgreSQL NAMEDATALEN - 1 bytes,
#: MySQL/MariaDB 64 characters); PostgreSQL silently truncates a longer one,
#: so it is refused rather than allowed to address another object.
MAX_IDENT = {"postgresql": 63, "mysql": 64}

# -- limit arguments ----------------------------------------------------------------
#
# The limits a caller passes (max_params, max_bytes, max_entries) are exact
# ints in a documented range, so that the compiled module holds them in C
# integers and sums statement sizes in 64 bits.

#: ``max_params``: 1 to 65535, the most bind parameters one statement can
#: carry on the wire (PostgreSQL's Bind message and MySQL's prepared
#: statements both count them in 16 bits).
MAX_PARAMS_LIMIT = 65535
#: ``max_bytes``: at most 2**62 (MySQL's max_allowed_packet is at most 1 GiB);
#: 0 means no byte limit where a builder allows it.
MAX_BYTES_LIMIT = 1 << 62
#: ``QueryCacheCore(max_entries=)``: 1 to 2**31 - 1.
MAX_ENTRIES_LIMIT = (1 << 31) - 1


def check_limit(name, value, low, high):
    """``value`` if it is an int (not a bool) from ``low`` to ``high``; else
    TypeError or ValueError, with the message both kernel modules give."""
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    if value > high:
        raise ValueError(f"{name} must be at most {high}, got {value}")
    return value


# -- statement sizes ------------------------------------------------------------------

#: Bytes a statement spends per value on top of the literal itself: the
#: separator and quotes or the placeholder's share (``%s, `` -> ``'...', ``).
VALUE_OVERHEAD = 4
#: Bytes assumed for a value that is not text or bytes (numbers, dates, UUIDs,
#: Decimal): their literal forms stay well below this.
SCALAR_LITERAL = 40
#: Size estimates stop growing here (the compiled module sums them in a
#: signed 64-bit integer).  Far above MAX_BYTES_LIMIT, so it never changes
#: where a chunk ends; only a ``__len__`` that lies gets a row near it.
SIZE_CAP = (1 << 63) - 1

# -- query-cache keys -----------------------------------------------------------------

_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class created at run time
_BUILTIN_FUNCTION = type(object.__new__)

# A subclass of one of these is encoded as b"x", its qualified name, then its
# value converted to the base (first match wins: datetime before date).  The
# builtins are what query inputs subclass (IntEnum, str enums, namedtuples);
# the rest are here because their subclasses (freezegun's FakeDatetime, a
# Decimal subclass) keep the value in C fields, which b"o" would not see.
_SUBCLASSED = (
    (int, int),
    (float, float),
    (str, str.__str__),
    (bytes, bytes),
    (tuple, tuple),
    (list, list),
    (dict, dict),
    (bytearray, bytearray),
    (set, set),
    (frozenset, frozenset),
    (decimal.Decimal, decimal.Decimal),
    (datetime.datetime, lambda v: datetime.datetime.combine(v, v.timetz())),
    (datetime.date, lambda v: datetime.date(v.year, v.month, v.day)),
    (datetime.time, lambda v: datetime.time(v.hour, v.minute, v.second, v.microsecond, v.tzinfo, fold=v.fold)),
    (datetime.timedelta, lambda v: datetime.timedelta(v.days, v.seconds, v.microseconds)),
)

_SUBCLASSED_BASES = tuple(base for base, _ in _SUBCLASSED)


def _slot_names(cls):
    """Attribute names of the value slots ``cls`` and its bases declare."""
    names = []
    for c in cls.__mro__:
        slots = c.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__") and c.__name__.lstrip("_"):
                name = "_" + c.__name__.lstrip("_") + name  # private names are mangled
            names.append(name)
    return names


def _state_is_visible(cls):
    """Whether instances of ``cls`` keep all their state where Python sees it
    (``__dict__`` and slots): every class above ``object`` is a Python class
    without a C ``__new__``.  A bare ``object()`` has only its identity."""
    if cls is object:
        return False
    for c in cls.__mro__[:-1]:
        if not c.__flags__ & _HEAPTYPE or type(c.__dict__.get("__new__")) is _BUILTIN_FUNCTION:
            return False
    return True


def _object_state(value):
    """The attributes of an instance of a Python class as a dict, or None.

    None when some class above ``object`` is a C type (or has a C ``__new__``,
    as functools.partial does): such instances keep state that ``__dict__``
    does not show, so functions, exceptions or partials would all collide.
    """
    cls = type(value)
    if not _state_is_visible(cls):
        return None
    attrs = getattr(value, "__dict__", None)
    slots = {}
    for name in _slot_names(cls):
        try:
            slots[name] = getattr(value, name)
        except AttributeError:  # an unset slot
            pass
    if attrs is None:
        return slots
    if slots:
        # A slot hides a __dict__ entry of the same name, as it does for getattr().
        attrs = {**attrs, **slots}
    return attrs


#: Classes whose instances are fully described by their ``__dict__`` (no
#: slots, no C-level state; see _object_state), memoized as class ->
#: qualified name, or "" for a class that is not such a class.  The compiled
#: module reads this dict first, so the common case (RESTAlchemy filter
#: objects) is encoded without a call.  Bounded: classes made at run time
#: must not grow it without limit.
PLAIN_CLASSES = {}
_PLAIN_CLASSES_MAX = 4096


def plain_class_name(cls):
    """Qualified name of ``cls`` if its instances are fully described by their
    ``__dict__``, else "" (memoized in PLAIN_CLASSES)."""
    name = PLAIN_CLASSES.get(cls)
    if name is None:
        name = ""
        if (not issubclass(cls, _SUBCLASSED_BASES) and not issubclass(cls, enum.Enum)
                and not _slot_names(cls) and cls.__dictoffset__ != 0 and _state_is_visible(cls)):
            name = f"{cls.__module__}.{cls.__qualname__}"
        if len(PLAIN_CLASSES) >= _PLAIN_CLASSES_MAX:
            PLAIN_CLASSES.clear()
        PLAIN_CLASSES[cls] = name
    return name


def exotic(value):
    """``(tag, type name, stand-in)`` for a value of none of the exact types:
    b"x" and the value converted to its base for a subclass of a supported
    type (an Enum member: its value), b"o" and the attributes for an instance
    of a Python class; TypeError for anything else."""
    cls = type(value)
    for base, convert in _SUBCLASSED:
        if issubclass(cls, base):
            tag, inner = b"x", convert(value)
            break
    else:
        if issubclass(cls, enum.Enum):
            tag, inner = b"x", value._value_
        else:
            tag, inner = b"o", _object_state(value)
            if inner is None:
                raise TypeError(f"cannot build a cache key from a {cls.__name__}")
    return tag, f"{cls.__module__}.{cls.__qualname__}", inner


# -- statement kinds ------------------------------------------------------------------

#: Read clauses that lock rows: such reads are never served from the cache.
LOCKING_READ = re.compile(
    r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b|\bLOCK\s+IN\s+SHARE\s+MODE\b", re.I)

#: Statements that only read: anything else run through a session empties its cache.
READ_ONLY = re.compile(r"\s*(\(\s*)*(SELECT|SHOW|EXPLAIN|DESCRIBE|DESC)\b", re.I)

#: Bounds of each module's statement_kind memo: at most this many entries
#: (then it starts afresh), and only statements up to this many characters
#: (a batch INSERT can be megabytes).
STATEMENT_KINDS_MAX = 4096
STATEMENT_KIND_MAX_LEN = 4096
