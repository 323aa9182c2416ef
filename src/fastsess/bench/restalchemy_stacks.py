"""The RESTAlchemy stacks: RESTAlchemy 16 as shipped, and on fastsess (``fastsess.restalchemy``).

Both run the scenarios through RESTAlchemy's own API: its sessions
(``engine.session_manager()``, ``session.execute``, ``session.batch_insert``)
and, for the model insert, the query cache and the request mix, its ORM on a
model of the workload's row (``restalchemy_models``).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import uuid

from .connect import restalchemy_url
from .scenarios import CACHE_ROW, NOTES, PAGE, ROW_COLUMNS, Impl, Workload, row_key
from .base import Stack, Unavailable, session_impl


def _restalchemy_engines():
    """RESTAlchemy's engines module (it imports psycopg_pool and mysql-connector)."""
    try:
        return importlib.import_module("restalchemy.storage.sql.engines")
    except ImportError as e:
        if (getattr(e, "name", None) or "").split(".")[0] == "restalchemy":
            raise Unavailable(f"RESTAlchemy is not installed ({e})") from None
        # Installed, but a driver it imports is not (psycopg_pool, mysql-connector).
        raise Unavailable(f"RESTAlchemy cannot be imported ({e})") from None


def restalchemy_models(w: Workload):
    """(rows model, insert model, items model, the models the model insert
    writes): one model of the workload's row on each of its tables, made
    once per workload."""
    models_ = getattr(w, "_restalchemy_models", None)
    if models_ is not None:
        return models_
    from restalchemy.dm import models, properties, types
    from restalchemy.storage.sql import orm

    # As RESTAlchemy's users write it: on PostgreSQL a dict goes in as jsonb
    # through RESTAlchemy's own dumper and comes back decoded by psycopg; on
    # MySQL (mysql-connector has no JSON type) its JSON-fields mixin dumps and
    # loads the payload.
    storable = (orm.SQLStorableMixin if w.dialect == "postgresql"
                else orm.SQLStorableWithJSONFieldsMixin)

    def model(table):
        class BenchRow(models.ModelWithUUID, storable):
            __tablename__ = table
            __jsonfields__ = ["payload"]
            num = properties.property(types.Integer(), required=True)
            name = properties.property(types.String(max_length=64), required=True)
            created_at = properties.property(types.UTCDateTimeZ(), required=True)
            enabled = properties.property(types.Boolean(), required=True)
            score = properties.property(types.Float(), required=True)
            note = properties.property(types.AllowNone(types.Enum(list(NOTES))), default=None)
            payload = properties.property(types.Dict(), default=dict)

        return BenchRow

    insert_model = model(w.insert_table)
    inserts = [insert_model(**dict(zip(ROW_COLUMNS, row))) for row in w.model_data]
    models_ = w._restalchemy_models = (model(w.rows_table), insert_model, model(w.items_table),
                                       inserts)
    return models_


def plain(model, w: Workload) -> dict:
    """A RESTAlchemy model's values in ``Workload.canonical`` form (its
    payload decoded by RESTAlchemy itself, its timestamp aware)."""
    return w.canonical(model.as_plain_dict(), json_text=False)


_MISSING = object()


class RESTAlchemyStack(Stack):
    """RESTAlchemy 16 as shipped (``on_fastsess=False``: psycopg_pool on
    PostgreSQL, mysql-connector on MySQL) or with its engines built by
    fastsess (``on_fastsess=True``: ``fastsess.restalchemy.install()`` is
    active while the engine is made and while the stack runs)."""

    def __init__(self, workload, on_fastsess=False):
        super().__init__(workload)
        self.key = "ra-fastsess" if on_fastsess else "ra"
        self.on_fastsess = on_fastsess
        self.engines = _restalchemy_engines()
        self.integration = None
        if on_fastsess:
            try:
                self.integration = importlib.import_module("fastsess.restalchemy")
            except ImportError as e:
                raise Unavailable(f"fastsess.restalchemy is not importable ({e})") from None
        self.models = restalchemy_models(workload)
        suffix = uuid.uuid4().hex[:8]
        self.engine_name = f"fastsess-bench-{self.key}-{suffix}"
        if workload.dialect == "postgresql":
            config = {"min_size": 1, "max_size": 1}
        else:
            config = {"pool_size": 1, "pool_name": f"fastsess-bench-{suffix}"}
        with self._integration():
            self.engines.engine_factory.configure_factory(
                db_url=restalchemy_url(workload.url), config=config, name=self.engine_name)
            self.engine = self.engines.engine_factory.get_engine(self.engine_name)

    @contextlib.contextmanager
    def _integration(self):
        """fastsess.restalchemy installed for the RESTAlchemy-on-fastsess stack
        and uninstalled for the stock one, restored afterwards."""
        module = self.integration if self.on_fastsess else sys.modules.get("fastsess.restalchemy")
        if module is None:
            yield
            return
        was = bool(module.installed())
        if was != self.on_fastsess:
            module.install() if self.on_fastsess else module.uninstall()
        try:
            yield
        finally:
            if was != self.on_fastsess:
                module.uninstall() if self.on_fastsess else module.install()

    @contextlib.contextmanager
    def _default_engine(self):
        # RESTAlchemy's ORM always reads the factory's "default" engine, and
        # configure_factory() would open a new pool (a new connection) on every
        # switch: point the default at this stack's engine for the run instead.
        factory = self.engines.engine_factory
        registry = factory._engines
        default = self.engines.DEFAULT_NAME
        previous = registry.get(default, _MISSING)
        registry[default] = self.engine
        try:
            yield
        finally:
            if previous is _MISSING:
                registry.pop(default, None)
            else:
                registry[default] = previous

    @contextlib.contextmanager
    def active(self):
        with self._integration(), self._default_engine():
            yield

    @contextlib.contextmanager
    def borrow(self):
        with self._integration():
            conn = self.engine.get_connection()
        try:
            yield conn
        finally:
            with self._integration():
                self.engine.close_connection(conn)

    def impl(self, key):
        from restalchemy.dm import filters

        w, e = self.w, self.engine
        n = w.size[key]
        row_model, _, item_model, inserts = self.models
        if key in ("fetch", "cycle", "point"):
            return session_impl(key, e, w)
        if key == "models":
            def insert():
                with e.session_manager() as s:
                    s.batch_insert(inserts)
                return len(inserts)

            return Impl(insert, prepare=w.truncate_insert, outcome=w.insert_outcome)
        if key == "cache":
            held = []
            eq = filters.EQ
            where = {"uuid": eq(row_key(CACHE_ROW))}

            def prime():
                s = e.get_session()
                held.append(s)
                row_model.objects.get_all(filters=where, session=s, cache=True)

            def hits():
                s = held[-1]
                get_all = row_model.objects.get_all
                for _ in range(n):
                    found = get_all(filters=where, session=s, cache=True)
                return found

            def close():
                while held:
                    s = held.pop()
                    s.commit()
                    s.close()

            return Impl(hits, prepare=prime, finish=close,
                        outcome=lambda found: [plain(m, w) for m in found])
        if key == "mix":
            ids = list(w.item_ids)
            created = [dict(zip(ROW_COLUMNS[1:], row)) for row in w.created_rows]
            eq = filters.EQ

            def mix():
                objects = item_model.objects
                for i in range(n):
                    page = objects.get_all(order_by={"num": "asc"}, limit=PAGE)
                    item = objects.get_one(filters={"uuid": eq(ids[i % len(ids)])})
                    item_model(**created[i]).insert()
                return page, item, n

            def outcome(result):
                page, item, n = result
                return w.mix_outcome(([m.as_plain_dict() for m in page], item.as_plain_dict(), n),
                                     json_text=False)

            return Impl(mix, prepare=w.sweep_items, outcome=outcome)
        raise Unavailable(f"no {key!r} scenario")

    def close(self) -> None:
        with self._integration():
            engine = self.engines.engine_factory._engines.get(self.engine_name)
            self.engines.engine_factory.destroy_engine(self.engine_name)
        # RESTAlchemy 16's MySQL engine has no close(); its __del__ empties the
        # pool.  Do that now rather than whenever the engine is collected.
        remove = getattr(getattr(engine, "_pool", None), "_remove_connections", None)
        if remove is not None:
            remove()
