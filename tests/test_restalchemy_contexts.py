"""RESTAlchemy contexts, API middleware and migrations on fastsess (drop-in)."""

from __future__ import annotations

import io
import os
import threading
import typing
import uuid

import orjson
import pytest

pytest.importorskip("restalchemy")

from restalchemy.api import applications, controllers, resources, routes  # noqa: E402
from restalchemy.api.middlewares import contexts as context_middleware  # noqa: E402
from restalchemy.api.middlewares import errors as errors_middleware  # noqa: E402
from restalchemy.common import contexts  # noqa: E402
from restalchemy.dm import filters as dm_filters  # noqa: E402
from restalchemy.storage import exceptions as ra_exc  # noqa: E402
from restalchemy.storage.sql import engines as ra_engines  # noqa: E402
from restalchemy.storage.sql import migrations  # noqa: E402
from restalchemy.storage.sql import sessions as ra_sessions  # noqa: E402
from restalchemy.storage.sql import utils as ra_sql_utils  # noqa: E402

import fastsess  # noqa: E402
from fastsess import errors  # noqa: E402

from .restalchemy_models import SMALL_POOL  # noqa: E402

READONLY = "readonly"


@pytest.fixture
def readonly_engine(ra_engine, ra_url, dialect):
    """A read-only engine registered as "readonly" beside the default one."""
    ra_engines.engine_factory.configure_factory(
        db_url=ra_url, config=dict(SMALL_POOL[dialect]), name=READONLY, readonly=True)
    return ra_engines.engine_factory.get_engine(READONLY)


def test_one_storage_slot_shared_by_all_engines(ra_engine, readonly_engine):
    storage = readonly_engine.get_session_storage()
    session = readonly_engine.get_session()
    storage.store_session(session)
    try:
        # Every engine's storage, and RESTAlchemy's own, see the one slot.
        assert ra_engine.get_session_storage().get_session() is session
        assert ra_sessions.SessionThreadStorage().get_session() is session
        with pytest.raises(ra_sessions.SessionConflict):
            ra_engine.get_session_storage().store_session(ra_engine.get_session())
        with ra_engine.session_manager() as s:
            assert s is session
        # fastsess's own scope reads the same slot.
        with fastsess.session_manager(ra_engine) as s:
            assert s is session
        seen = []
        thread = threading.Thread(target=lambda: seen.append(
            ra_engine.get_session_storage().find_session()))
        thread.start()
        thread.join()
        assert seen == [None]  # one slot per thread
    finally:
        assert storage.pop_session() is session
        session.close()
    with pytest.raises(ra_sessions.SessionNotFound):
        ra_engine.get_session_storage().get_session()


def test_readonly_context(ra_models, readonly_engine, dialect):
    Item = ra_models.Item
    Item(name="seen").insert()
    ctx = contexts.Context(readonly_engine_name=READONLY)
    ctx.set_readonly(True)
    with ctx.session_manager() as session:
        assert session.engine is readonly_engine
        # The models ask the default engine, and get the stored read-only session.
        assert [o.name for o in Item.objects.get_all()] == ["seen"]
        with pytest.raises(ra_exc.UnknownStorageException) as info:
            Item(name="refused").insert()
        assert isinstance(info.value.caused, errors.ReadOnlyViolation)
    with pytest.raises(ra_sessions.SessionNotFound):
        ra_sessions.SessionThreadStorage().get_session()
    assert Item.objects.count() == 1

    ctx = contexts.Context(readonly_engine_name=READONLY)
    with ctx.session_manager():
        Item(name="written").insert()
    assert Item.objects.count() == 2


def test_savepoint_utility(ra_models):
    Item = ra_models.Item
    ctx = contexts.Context()
    with ctx.session_manager():
        Item(name="outer").insert()
        with pytest.raises(ValueError):
            with ra_sql_utils.savepoint():
                Item(name="inner").insert()
                raise ValueError("undo the inner insert only")
        with ra_sql_utils.savepoint(defer_release=True):
            Item(name="kept").insert()
    assert sorted(o.name for o in Item.objects.get_all()) == ["kept", "outer"]


def _wsgi(app, method, path, body=b""):
    environ = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "test", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "test", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": io.BytesIO(),
        "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    if body:
        environ["CONTENT_TYPE"] = "application/json"
    status = []
    chunks = app(environ, lambda s, headers, exc_info=None: status.append(int(s.split()[0])))
    return status[0], b"".join(chunks)


def _app(Item, seen_engines):
    """A RESTAlchemy WSGI app for ``Item`` behind ContextMiddleware, GETs
    read-only.  ``seen_engines`` collects (method, engine readonly) pairs."""

    class ItemController(controllers.Controller):
        __resource__ = resources.ResourceByRAModel(Item, process_filters=True,
                                                   convert_underscore=False)

        def _note(self, method):
            engine = self.request.context.get_session().engine
            seen_engines.append((method, engine.readonly))

        def filter(self, filters, order_by=None):
            self._note("filter")
            return Item.objects.get_all(filters=filters, order_by={"name": "asc"})

        def get(self, uuid):
            self._note("get")
            return Item.objects.get_one(filters={"uuid": dm_filters.EQ(uuid)})

        def create(self, **kwargs):
            self._note("create")
            item = Item(**kwargs)
            item.insert()
            return item

    class ItemsRoute(routes.Route):
        __controller__ = ItemController
        __allow_methods__: typing.ClassVar = [routes.FILTER, routes.GET, routes.CREATE]

    class Root(routes.Route):
        __controller__ = ItemController
        __allow_methods__: typing.ClassVar = []
        items = routes.route(ItemsRoute)

    return errors_middleware.ErrorsHandlerMiddleware(context_middleware.ContextMiddleware(
        applications.WSGIApp(route_class=Root),
        context_kwargs={"readonly_engine_name": READONLY},
        readonly_whitelist={"GET": r"^/items/.*"}))


def test_wsgi_context_middleware_request_path(ra_models, readonly_engine):
    Item = ra_models.Item
    seen = []
    app = _app(Item, seen)

    status, body = _wsgi(app, "POST", "/items/", orjson.dumps({"name": "posted", "count": 7}))
    assert status == 201, body
    created = orjson.loads(body)
    assert (created["name"], created["count"]) == ("posted", 7)

    status, body = _wsgi(app, "GET", "/items/")
    assert status == 200, body
    assert [d["name"] for d in orjson.loads(body)] == ["posted"]

    status, body = _wsgi(app, "GET", f"/items/{created['uuid']}")
    assert status == 200, body
    assert orjson.loads(body)["uuid"] == created["uuid"]

    status, body = _wsgi(app, "GET", f"/items/{uuid.uuid4()}")
    assert status == 404, body

    # POST ran on the read-write engine, the GETs on the read-only one.
    assert seen[:3] == [("create", False), ("filter", True), ("get", True)]
    # Every request returned its session and removed it from the slot.
    with pytest.raises(ra_sessions.SessionNotFound):
        ra_sessions.SessionThreadStorage().get_session()
    assert Item.objects.count() == 1


MIGRATION = '''\
from restalchemy.storage.sql import migrations


class MigrationStep(migrations.AbstractMigrationStep):
    def __init__(self):
        self._depends = [{depends!r}]

    @property
    def migration_id(self):
        return "{migration_id}"

    def upgrade(self, session):
        session.execute({upgrade!r})

    def downgrade(self, session):
        self._delete_table_if_exists(session, "{table}")


migration_step = MigrationStep()
'''


def test_migrations(ra_engine, tmp_path):
    tag = uuid.uuid4().hex[:6]
    first_table, second_table = f"mig_a_{tag}", f"mig_b_{tag}"
    first, second = f"0000-first-{tag}.py", f"0001-second-{tag}.py"
    (tmp_path / first).write_text(MIGRATION.format(
        depends="", migration_id=str(uuid.uuid4()), table=first_table,
        upgrade=f"CREATE TABLE {first_table} (id INT PRIMARY KEY, note VARCHAR(10))"))
    (tmp_path / second).write_text(MIGRATION.format(
        depends=first, migration_id=str(uuid.uuid4()), table=second_table,
        upgrade=f"CREATE TABLE {second_table} (id INT PRIMARY KEY)"))

    engine = migrations.MigrationEngine(migrations_path=os.fspath(tmp_path))

    def tables():
        with ra_engine.session_manager() as s:
            rows = s.execute("SELECT table_name AS name FROM information_schema.tables "
                             "WHERE table_name LIKE %s", (f"mig_%_{tag}",)).fetchall()
        return sorted(r["name"] for r in rows)

    try:
        engine.apply_migration(second[:-3])
        assert tables() == [first_table, second_table]
        with ra_engine.session_manager() as s:
            assert not engine.get_unapplied_migrations(s)
        engine.rollback_migration(second[:-3])
        assert tables() == [first_table]
        engine.rollback_migration(first[:-3])
        assert tables() == []
    finally:
        with ra_engine.session_manager() as s:
            for table in (second_table, first_table):
                s.execute(f"DROP TABLE IF EXISTS {table}")
        for name in (first, second):
            __import__("sys").modules.pop(name[:-3], None)
