"""Statement parameters both drivers take the same way, or neither does.

The rule (README, "Parameters"): a ``dict`` goes in as JSON text on both
databases (``jsonb`` on PostgreSQL, a string literal on MySQL); any other JSON
value goes in the same way when wrapped in ``Json``; lists and tuples keep
their driver meaning (PostgreSQL arrays, MySQL ``IN %s`` sequences); a value
with no faithful adapter (``set``, a plain ``Enum`` member, an arbitrary
object) raises ``errors.UnsupportedParameter`` before the statement is sent.

This module imports no driver: the adapters in ``fastsess.drivers`` use it.
"""

from __future__ import annotations

import json

from . import errors

__all__ = ["Json", "dumps"]


class Json:
    """``fastsess.Json(value)``: ``value`` sent as JSON on either database.

    ``Json([1, 2])`` stores the JSON array where a bare list would be a
    PostgreSQL array or a MySQL ``IN`` sequence.  PostgreSQL receives it as
    ``jsonb`` (it fits ``json``, ``jsonb`` and text columns), MySQL as a
    string literal holding the JSON text; ``dumps(value)`` writes the text.
    """

    __slots__ = ("value",)
    __module__ = "fastsess"

    def __init__(self, value):
        self.value = value

    def __repr__(self) -> str:
        text = repr(self.value)
        if len(text) > 60:
            text = f"{text[:55]} ... ({len(text)} chars)"
        return f"fastsess.Json({text})"

    def __eq__(self, other):
        return type(other) is Json and self.value == other.value

    __hash__ = None  # as its (mutable) value


def dumps(value) -> str:
    """The JSON text fastsess sends for a dict or a ``Json`` value, on both
    databases: ``json.dumps`` with non-ASCII characters kept as they are
    (the drivers encode the text in the connection's character set) and
    NaN/infinity refused (no database takes them as JSON)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


# -- naming the parameter an error is about -----------------------------------------


def _contains(value, test, depth=0) -> bool:
    """Whether ``value`` or something in its lists/tuples passes ``test``."""
    if test(value):
        return True
    if depth < 32 and type(value) in (list, tuple):
        return any(_contains(item, test, depth + 1) for item in value)
    return False


def locate(params, test):
    """The position (sequence) or key (mapping) of the first parameter in
    ``params`` that passes ``test`` or holds (in nested lists and tuples) a
    value that does, and that parameter; ``(None, None)`` when none does."""
    if params is None:
        return None, None
    try:
        items = params.items() if hasattr(params, "keys") else enumerate(params)
        for where, value in items:
            if _contains(value, test):
                return where, value
    except Exception:  # an exhausted iterator, a mapping that misbehaves: do not say
        pass
    return None, None


def first(value, test, depth=0):
    """``value`` if it passes ``test``, else the first thing in its (nested)
    lists and tuples that does, else None."""
    if test(value):
        return value
    if depth < 32 and type(value) in (list, tuple):
        for item in value:
            found = first(item, test, depth + 1)
            if found is not None:
                return found
    return None


def type_name(cls: type) -> str:
    module = getattr(cls, "__module__", "")
    name = getattr(cls, "__qualname__", cls.__name__)
    return name if module in ("builtins", "", None) else f"{module}.{name}"


def describe(parameter, row=None) -> str:
    """``parameter 2``, ``parameter 'name'``, ``parameter 'data' of row 3``."""
    if parameter is None:
        return "a parameter" if row is None else f"a parameter of row {row}"
    if row is None:
        return f"parameter {parameter!r}"
    return f"parameter {parameter!r} of row {row}"


_HINT = ("send a dict or fastsess.Json(value) for JSON, or convert the value to a str, a "
         "number, bytes, a date/time or a UUID")


def unsupported(value, dialect: str, reason=None, parameter=None, row=None, orig=None,
                nested=False):
    """An ``UnsupportedParameter`` for ``value`` (``reason``: why it cannot
    go in; default: no faithful adapter; ``nested``: the parameter is a list
    or tuple holding ``value``)."""
    cls = type(value)
    why = reason or "no adapter stores it faithfully"
    verb = "holds a value" if nested else "is"
    err = errors.UnsupportedParameter(
        f"{describe(parameter, row)} {verb} of type {type_name(cls)}, which cannot be sent to "
        f"{dialect}: {why}; the statement was not sent ({_HINT})",
        orig=orig, parameter=parameter, python_type=cls, row=row)
    err._value, err._reason, err._nested = value, reason, nested
    return err


def invalid(value, dialect: str, reason: str, parameter=None, row=None, orig=None,
            nested=False):
    """An ``InvalidParameterValue`` for ``value``."""
    cls = type(value)
    what = f"a value of type {type_name(cls)} in" if nested else f"the {type_name(cls)} value of"
    err = errors.InvalidParameterValue(
        f"{what} {describe(parameter, row)} cannot be sent to {dialect}: {reason}; "
        f"the statement was not sent", orig=orig, parameter=parameter, python_type=cls, row=row)
    err._value, err._reason, err._nested = value, reason, nested
    return err


def unencodable(exc: UnicodeEncodeError, dialect: str, params):
    """An ``InvalidParameterValue`` for text the driver could not encode
    (a lone surrogate, a character the connection's character set lacks),
    naming the parameter of ``params`` that holds it: a str, or a dict or
    ``Json`` whose JSON text does."""
    chars = exc.object[exc.start:exc.end] if isinstance(exc.object, str) else None

    def holds(value):
        if chars is None:
            return False
        if isinstance(value, str):
            return chars in value
        if isinstance(value, (dict, Json)):
            try:
                return chars in dumps(value.value if isinstance(value, Json) else value)
            except (TypeError, ValueError):
                return False
        return False

    where, top = locate(params, holds)
    reason = (f"its text cannot be encoded as {exc.encoding} ({exc.reason}: {chars!r} "
              f"at position {exc.start})")
    if where is None:
        return invalid(exc.object, dialect, reason, orig=exc)
    nested = not holds(top)  # a str inside a list or tuple parameter
    return invalid(first(top, holds) if nested else top, dialect, reason, parameter=where,
                   orig=exc, nested=nested)


def placed(err, dialect: str, parameter, row=None, nested=False):
    """``err`` (made by ``unsupported``/``invalid``) again, naming
    ``parameter`` (and ``row``)."""
    value, reason, orig = err._value, err._reason, err.orig
    if isinstance(err, errors.UnsupportedParameter):
        return unsupported(value, dialect, reason, parameter, row, orig, nested)
    return invalid(value, dialect, reason, parameter, row, orig, nested)


def place(err, dialect: str, params):
    """``err`` again (a copy), naming the parameter of ``params`` that holds
    its value (the very object) if one does and ``err`` names none yet."""
    if not hasattr(err, "_value"):  # made without its value: as it is
        return err
    if err.parameter is not None or params is None:
        return placed(err, dialect, err.parameter, err.row, err._nested)
    bad = err._value
    where, top = locate(params, lambda v: v is bad)
    return placed(err, dialect, where, err.row, where is not None and top is not bad)


def place_in_rows(err, dialect: str, columns, rows):
    """``err`` naming the row and column of ``rows`` (sequences in
    ``columns`` order) that hold its value."""
    bad = err._value

    def test(v):
        return v is bad

    for i, row in enumerate(rows):
        for column, value in zip(columns, row):
            if _contains(value, test):
                return placed(err, dialect, column, i, nested=value is not bad)
    return err


def json_text(value, dialect: str, param=None) -> str:
    """``dumps(value)``, or the parameter error saying why it cannot be
    (about ``param``, the parameter holding ``value``: default ``value``)."""
    try:
        return dumps(value)
    except TypeError as e:  # an object json cannot write, a non-str key
        problem = unsupported, f"it holds something JSON cannot write: {e}"
    except (ValueError, RecursionError) as e:  # NaN, infinity, a cycle, too deep
        problem = invalid, f"its JSON text cannot be written: {e}"
    raise problem[0](value if param is None else param, dialect, problem[1])
