"""Models' stored values in bulk, equal to RESTAlchemy's ``get_storable_snapshot()``.

``batch_insert`` stores, for each model, the values its
``get_storable_snapshot()`` gives.  Called per model, that method first
builds a property object per field (a fresh model keeps plain values until
something asks for its properties), then calls each field type's
``to_simple_type``: 15-30 µs per model of the issue-13 kind, most of the
client time of a 10k-model batch once COPY sends the rows.
``storable_rows(models)`` reads the same values column by column instead:
the values the models keep (C-level ``map``s), each column's
``to_simple_type`` mapped over it (skipped where it returns its argument)
and, for the JSON-fields mixin, that mixin's JSON text (orjson without
``OPT_NON_STR_KEYS`` while every key is a str: the same text, cheaper).

It reads so only models whose class takes its snapshot with RESTAlchemy's
own ``get_storable_snapshot`` and ``_get_prepared_data`` (the storable
mixin's or the JSON-fields mixin's), and only when the first model's row
read this way equals that model's own snapshot; otherwise (or when reading
fails) it takes every model's snapshot, as ``fastsess.batch`` does.
"""

from __future__ import annotations

from functools import partial
from itertools import compress, count
from operator import attrgetter, itemgetter

import orjson
from restalchemy.dm import properties as ra_properties
from restalchemy.dm import types as ra_types
from restalchemy.storage import base as ra_storage
from restalchemy.storage.sql import orm as ra_orm

from .. import batch

__all__ = ["storable_rows"]

_SNAPSHOT = ra_storage.AbstractStorableMixin.get_storable_snapshot
_PREPARED = ra_storage.AbstractStorableMixin._get_prepared_data
_JSON_PREPARED = ra_orm.SQLStorableWithJSONFieldsMixin._get_prepared_data
# to_simple_type methods that return their argument.
_AS_IS = frozenset({ra_types.BasePythonType.to_simple_type, ra_types.Enum.to_simple_type})


def storable_rows(models):
    """``(table, columns, rows)`` to insert ``models`` (a non-empty list):
    each row holds the model's ``get_storable_snapshot()`` values in
    ``columns`` order.  Models of more than one type raise ``TypeError``
    before any value is read."""
    table = batch.model_table(models)
    first = models[0]
    snapshot = first.get_storable_snapshot()
    columns = list(snapshot)
    try:
        converters = _converters(first, columns)
        rows = None if converters is None else _rows(models, columns, converters)
    except Exception:  # the snapshots below raise it again, as stock does
        rows = None
    if rows is None or list(rows[0]) != [snapshot[c] for c in columns]:
        _, columns, rows = batch.models_as_rows(models)
    return table, columns, rows


def _converters(first, columns):
    """Per column, what turns the kept values of a column into the
    snapshot's (an iterable in, an iterable out; None: the values as they
    are), or None when this model's snapshot is not RESTAlchemy's."""
    cls = type(first)
    if cls.get_storable_snapshot is not _SNAPSHOT:
        return None
    prepared = cls._get_prepared_data
    if prepared is _PREPARED:
        json_fields = frozenset()
    elif prepared is _JSON_PREPARED:
        json_fields = frozenset(cls.__jsonfields__)
    else:
        return None
    manager = first.properties
    if type(manager) is not ra_properties.PropertyManager:
        return None
    converters = []
    for name in columns:
        method = _to_simple_type(manager[name].property_type)
        convert = None if method is None else partial(map, method)
        if name in json_fields:
            convert = _json_fields if convert is None else _then(convert, _json_fields)
        converters.append(convert)
    return converters


def _to_simple_type(property_type):
    """``property_type.to_simple_type``, or None where it returns its argument."""
    method = getattr(type(property_type), "to_simple_type", None)
    if method in _AS_IS:
        return None
    if method is ra_types.AllowNone.to_simple_type \
            and _to_simple_type(property_type.nested_type) is None:
        return None
    return property_type.to_simple_type


def _json_field(value):
    # The JSON-fields mixin's text of a JSON field (its _get_prepared_data).
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_fields(values):
    """``_json_field`` of each value: without OPT_NON_STR_KEYS (slower, and
    the same text where every key is a str) unless orjson then refuses one."""
    values = list(values)
    try:
        return list(map(bytes.decode, map(orjson.dumps, values)))
    except TypeError:  # a non-str key, or what the mixin refuses too
        return list(map(_json_field, values))


def _then(first, second):
    return lambda values: second(first(values))


# A model's property manager keeps the values of the properties it has not
# built (all of them in a fresh model) in ``_values``, the built ones in
# ``_properties``; its ``value`` merges both, building none.
_built = attrgetter("properties._properties")
_kept = attrgetter("properties._values")


def _rows(models, columns, converters):
    """The rows, made by C-level maps: a Python call per value only where a
    column's converter is one."""
    values = list(map(_kept, models))
    for i in compress(count(), map(_built, models)):  # models with built properties
        values[i] = models[i].properties.value
    by_column = []
    for name, convert in zip(columns, converters):
        column = map(itemgetter(name), values)
        by_column.append(column if convert is None else convert(column))
    return list(zip(*by_column))
