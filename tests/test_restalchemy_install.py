"""fastsess.restalchemy.install() / uninstall() / installed()."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import weakref
from unittest import mock

import pytest

pytest.importorskip("restalchemy")

from restalchemy.storage.sql import engines as ra_engines  # noqa: E402
from restalchemy.storage.sql import sessions as ra_sessions  # noqa: E402

import fastsess  # noqa: E402
import fastsess.restalchemy as fs_ra  # noqa: E402
from fastsess.restalchemy import engines as drop_in_engines  # noqa: E402

from .restalchemy_models import SMALL_POOL  # noqa: E402


@pytest.fixture
def stock():
    """RESTAlchemy as stock for the test; put back as found after."""
    was = fs_ra.installed()
    fs_ra.uninstall()
    yield
    if was:
        fs_ra.install()


def _run(code):
    """Run ``code`` in a fresh interpreter; (returncode, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=False)
    return done.returncode, done.stdout, done.stderr


def test_install_uninstall_restore_restalchemy_exactly(stock):
    module, factory = ra_engines, ra_engines.engine_factory
    stock_pg, stock_my = module.PgSQLEngine, module.MySQLEngine
    stock_map = dict(factory._engines_map)
    assert not fs_ra.installed()

    fs_ra.install()
    fs_ra.install()  # idempotent
    assert fs_ra.installed()
    assert module.PgSQLEngine is drop_in_engines.PgSQLEngine
    assert module.MySQLEngine is drop_in_engines.MySQLEngine
    assert factory._engines_map == {"postgresql": drop_in_engines.PgSQLEngine,
                                    "mysql": drop_in_engines.MySQLEngine}
    # Still RESTAlchemy's classes as far as isinstance is concerned.
    assert issubclass(module.PgSQLEngine, stock_pg) and issubclass(module.MySQLEngine, stock_my)
    assert issubclass(module.PgSQLEngine, fastsess.Engine)

    fs_ra.uninstall()
    fs_ra.uninstall()  # idempotent
    assert not fs_ra.installed()
    assert module.PgSQLEngine is stock_pg and module.MySQLEngine is stock_my
    assert factory._engines_map == stock_map
    assert all(factory._engines_map[k] is v for k, v in stock_map.items())


def test_factory_and_direct_construction_build_fastsess_engines(drop_in, ra_url, dialect):
    factory = ra_engines.engine_factory
    factory.configure_factory(db_url=ra_url, config=dict(SMALL_POOL[dialect]), name="fs-one")
    engine = factory.get_engine("fs-one")
    cls = ra_engines.PgSQLEngine if dialect == "postgresql" else ra_engines.MySQLEngine
    direct = cls(ra_url, config=dict(SMALL_POOL[dialect]), query_cache=True)
    try:
        for e in (engine, direct):
            assert isinstance(e, fastsess.Engine) and isinstance(e, cls)
            assert e.dialect.name == dialect
            assert e.db_name == ra_url.rsplit("/", 1)[1]
            assert e.escape("col") == ('"col"' if dialect == "postgresql" else "`col`")
            assert e.readonly is False
            assert hash(e) == hash(e) and weakref.ref(e)() is e
        assert engine.query_cache is False and direct.query_cache is True
        with direct.session_manager() as s:
            assert s.engine is direct
            for name in ("cache", "execute", "execute_many", "batch_insert", "batch_delete",
                         "commit", "rollback", "close"):
                assert getattr(s, name) is not None
            assert s.execute("SELECT 2 AS two").fetchall() == [{"two": 2}]
        raw = direct.get_connection()
        direct.close_connection(raw)
    finally:
        direct.close()
        factory.destroy_engine("fs-one")
    assert engine.closed and direct.closed


def test_engines_made_while_installed_keep_working_after_uninstall(stock, ra_url, dialect):
    fs_ra.install()
    cls = ra_engines.PgSQLEngine if dialect == "postgresql" else ra_engines.MySQLEngine
    engine = cls(ra_url, config=dict(SMALL_POOL[dialect]))
    fs_ra.uninstall()
    try:
        assert isinstance(engine, fastsess.Engine)
        with engine.session_manager() as s:
            assert s.execute("SELECT 3 AS three").fetchone() == {"three": 3}
    finally:
        engine.close()


def test_a_replaced_restalchemy_session_class_is_used(drop_in, ra_url, dialect):
    cls = ra_engines.PgSQLEngine if dialect == "postgresql" else ra_engines.MySQLEngine
    engine = cls(ra_url, config=dict(SMALL_POOL[dialect]))
    name = "PgSQLSession" if dialect == "postgresql" else "MySQLSession"
    try:
        with mock.patch.object(ra_sessions, name) as fake:
            assert engine.get_session() is fake.return_value
            fake.assert_called_once_with(engine=engine)
        assert type(engine.get_session()).__module__ == "fastsess.restalchemy.sessions"
    finally:
        engine.close()


def test_unknown_config_keys_are_refused(drop_in, ra_url, dialect):
    cls = ra_engines.PgSQLEngine if dialect == "postgresql" else ra_engines.MySQLEngine
    with pytest.raises(TypeError, match="bogus_option") as info:
        cls(ra_url, config={"bogus_option": 1})
    assert "supported:" in str(info.value)
    with pytest.raises(TypeError, match="must be callable"):
        cls(ra_url, config={"configure": 42})
    with pytest.raises(ValueError, match="should be starts with"):
        cls("sqlite:///x.db")


def test_install_is_silent_and_works_before_restalchemy_is_imported():
    code, out, err = _run("""
        import sys
        import fastsess.restalchemy as r
        assert "restalchemy" not in sys.modules  # importing the package imports no RESTAlchemy
        r.install()
        from restalchemy.storage.sql import engines
        assert engines.PgSQLEngine.__module__ == "fastsess.restalchemy.engines"
        assert engines.engine_factory._engines_map["mysql"] is engines.MySQLEngine
    """)
    assert (code, out, err) == (0, "", "")


def test_install_after_restalchemy_is_imported():
    code, out, err = _run("""
        from restalchemy.storage.sql import engines
        from restalchemy.common import contexts
        factory = engines.engine_factory
        import fastsess.restalchemy as r
        r.install()
        assert factory._engines_map["postgresql"] is engines.PgSQLEngine
        assert engines.PgSQLEngine.__module__ == "fastsess.restalchemy.engines"
    """)
    assert (code, out, err) == (0, "", "")


def test_fastsess_imports_without_restalchemy():
    code, out, err = _run("""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "restalchemy" or name.startswith("restalchemy."):
                    raise ImportError(f"No module named {name!r} (blocked)")
                return None

        sys.meta_path.insert(0, Block())
        import fastsess
        import fastsess.restalchemy as r
        assert not r.installed()
        try:
            r.install()
        except r.RESTAlchemyUnavailable as e:
            assert isinstance(e, ImportError) and isinstance(e, fastsess.errors.FastsessError)
            assert "needs RESTAlchemy 16.x" in str(e), str(e)
        else:
            raise AssertionError("install() without RESTAlchemy succeeded")
        assert not r.installed()
        assert "restalchemy.storage" not in sys.modules
    """)
    assert (code, out, err) == (0, "", ""), err


def test_clean_interpreter_exit_with_engines_alive(ra_url):
    # Engines (and a reference cycle) left for interpreter shutdown: nothing
    # may be printed, no thread may hang.
    code, out, err = _run(f"""
        import gc
        import fastsess.restalchemy as r
        r.install()
        from restalchemy.storage.sql import engines
        gc.disable()
        engines.engine_factory.configure_factory({ra_url!r})
        engine = engines.engine_factory.get_engine()
        with engine.session_manager() as s:
            s.execute("SELECT 1")
        engine.cycle = engine
    """)
    assert (code, out, err) == (0, "", "")


def test_engine_collected_closes_its_pool(drop_in, ra_url, dialect):
    import gc

    cls = ra_engines.PgSQLEngine if dialect == "postgresql" else ra_engines.MySQLEngine
    engine = cls(ra_url, config=dict(SMALL_POOL[dialect]))
    with engine.session_manager() as s:
        s.execute("SELECT 1")
    pool = engine._pool
    assert pool.stats()["idle"] == 1
    ref = weakref.ref(engine)
    del engine, s
    gc.collect()
    assert ref() is None
    assert pool.closed and pool.stats()["idle"] == 0


def test_engine_flags_are_fixed_at_construction(drop_in, ra_url, dialect):
    cls = ra_engines.PgSQLEngine if dialect == "postgresql" else ra_engines.MySQLEngine
    engine = cls(ra_url, config=dict(SMALL_POOL[dialect]), readonly=True, query_cache=True)
    try:
        assert engine.readonly is True and engine.query_cache is True
        with pytest.raises(AttributeError):
            engine.readonly = False
        with pytest.raises(AttributeError):
            engine.query_cache = False
    finally:
        engine.close()
