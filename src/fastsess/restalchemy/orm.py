"""Faster reads through RESTAlchemy's ORM, applied by ``install()``.

Two functions of RESTAlchemy 16 are replaced while the drop-in is installed;
both give exactly what the stock ones give, and fall back to them whenever
the fast path's assumptions do not hold:

- ``BaseOrmProcessResult.get_rows``: when the rows come from a fastsess
  result and the query's row parser hands every row back as it is (a model
  without prefetched relationships), the rows are the fastsess result's
  ``fetchall()`` -- one call, instead of three nested generators and two
  parser calls per row.
- ``SQLStorableMixin.restore_many_from_storage``: a page of rows is poured
  into models in one loop, with RESTAlchemy's per-row chain (``restore_row``
  -> ``pour_values`` -> ``PropertyManager.poured`` -> ``_pour_values`` ->
  ``validate``) written out inline.  Only for models that override none of
  those links; any other model takes the stock path.

``apply()`` / ``revert()`` install and remove the patches (``install()`` and
``uninstall()`` call them).
"""

from __future__ import annotations

import copy
from importlib import metadata

from restalchemy.common import exceptions as ra_exc
from restalchemy.dm import models as ra_models
from restalchemy.dm import properties as ra_properties
from restalchemy.storage.sql import orm as ra_orm
from restalchemy.storage.sql.dialect import base as ra_base
from restalchemy.storage.sql.dialect.query_builder import q as ra_q

from ..result import Result

WRITTEN_FOR = "16"  # RESTAlchemy's major version
_Mixin = ra_orm.SQLStorableMixin
_Manager = ra_properties.PropertyManager

# The stock functions, as RESTAlchemy defines them (taken when this module is
# imported, which install() does before it patches anything).
STOCK_GET_ROWS = ra_base.BaseOrmProcessResult.get_rows
STOCK_RESTORE_MANY = _Mixin.__dict__["restore_many_from_storage"]
_STOCK_RESTORE_ROW = _Mixin.__dict__["restore_row"].__func__
_STOCK_POUR_VALUES = ra_models.Model.pour_values
_STOCK_VALIDATE = ra_models.Model.validate
_STOCK_POURED = _Manager.__dict__["poured"].__func__
_STOCK_MANAGER_POUR = _Manager._pour_values


def get_rows(self):
    """``BaseOrmProcessResult.get_rows``, without a parser call per row when
    the parser would hand each row back unchanged."""
    if self._rows is None:
        outer = self._result
        query = self._query
        # Only the exact stock types: a subclass may parse or fetch its own way.
        if (type(outer) is ra_base.BaseProcessResult and type(outer._result) is Result
                and type(query) is ra_q.SelectQ
                and type(query._result_parser.root) is ra_q.ResultNode
                and query._result_parser.root._verbatim):
            # Fresh dicts in column order, as iterating the result yields them.
            self._rows = outer._result.fetchall()
            return self._rows
    return STOCK_GET_ROWS(self)


def _plain_restore(cls) -> bool:
    """Whether restoring a row of ``cls`` is RESTAlchemy's own chain, link
    for link, so that the inlined loop does what it would do."""
    collection = cls.properties
    return (getattr(cls.restore_row, "__func__", None) is _STOCK_RESTORE_ROW
            and cls.pour_values is _STOCK_POUR_VALUES
            # pour_values reads ``self.properties`` off a fresh instance: the
            # class attribute, unless a descriptor steps in.
            and not hasattr(type(collection), "__get__")
            and _Manager.__dict__["poured"].__func__ is _STOCK_POURED
            and _Manager._pour_values is _STOCK_MANAGER_POUR
            and _Manager.__new__ is object.__new__)


def _pour_page(cls, rows, plan):
    """The models a page of rows stands for: ``restore_row`` per row, with
    the chain under it written out (keep in step with RESTAlchemy 16's
    ``PropertyManager._pour_values`` and ``Model.pour_values``)."""
    collection = cls.properties
    new = cls.__new__
    set_attr = object.__setattr__
    validate_model = cls.validate is not _STOCK_VALIDATE
    missing = _Manager.MISSING
    deepcopy = copy.deepcopy
    objects = []
    for row in rows:
        obj = new(cls)
        manager = object.__new__(_Manager)
        manager._collection = collection
        manager._properties = {}
        kept = manager._values = {}
        first_values = None
        try:
            for name, load, validate, default, callable_default, required, mutable in plan:
                value = row.get(name, missing)
                if value is missing:
                    value = None
                elif load is not None:
                    value = load(value)
                # A stored NULL takes the default, as the stock loop does.
                if value is None:
                    value = default() if callable_default else default
                if value is None:
                    if required:
                        raise ra_exc.PropertyRequired(name=name)
                elif validate is not None and not validate(value):
                    raise ra_exc.TypeError(
                        value=value,
                        property_type=collection.properties[name].get_property_type())
                kept[name] = value
                if mutable:
                    if first_values is None:
                        first_values = manager._first_values = {}
                    first_values[name] = deepcopy(value)
        except ra_exc.PropertyRequired as e:
            raise ra_exc.PropertyRequired(name=e.name, model=cls)
        set_attr(obj, "properties", manager)
        if validate_model:
            try:
                obj.validate()
            except ra_exc.PropertyRequired as e:
                raise ra_exc.PropertyRequired(name=e.name, model=cls)
        set_attr(obj, "_saved", True)
        objects.append(obj)
    return objects


@classmethod
def restore_many_from_storage(cls, rows, session=None):
    """``SQLStorableMixin.restore_many_from_storage``, pouring the page in
    one loop when the model keeps RESTAlchemy's own restore chain."""
    rows = list(rows)
    if len(rows) > 1:
        cls._preload_relationships(rows, session)
    pour = cls._get_pour()
    plan = pour[0]
    # An empty plan makes the stock loop fall back to the declaration's.
    if plan and _plain_restore(cls):
        return _pour_page(cls, rows, plan)
    return [cls.restore_row(row, pour) for row in rows]


def _written_for() -> bool:
    """Whether the installed RESTAlchemy is the major version the inlined
    chain copies (another may have changed a link the guards cannot see)."""
    try:
        return metadata.version("restalchemy").split(".")[0] == WRITTEN_FOR
    except metadata.PackageNotFoundError:  # pragma: no cover - imported above
        return False


def apply() -> None:
    """Put the fast functions in place of RESTAlchemy's (only on the
    RESTAlchemy major version they were written and tested for)."""
    if not _written_for():
        return
    ra_base.BaseOrmProcessResult.get_rows = get_rows
    _Mixin.restore_many_from_storage = restore_many_from_storage


def revert() -> None:
    """Put RESTAlchemy's own functions back."""
    ra_base.BaseOrmProcessResult.get_rows = STOCK_GET_ROWS
    _Mixin.restore_many_from_storage = STOCK_RESTORE_MANY
