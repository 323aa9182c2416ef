"""Database URLs, engine options and the named-engine registry.

Mostly without a database; the few tests taking ``dialect`` use the servers.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import weakref

import pytest

import fastsess
from fastsess import errors
from fastsess.url import DatabaseURL

from .conftest import URLS

SECRET = "s3cretpw"


@pytest.fixture(autouse=True)
def clean_registry():
    fastsess.destroy_all_engines()
    yield
    fastsess.destroy_all_engines()


@pytest.fixture
def closing():
    """Engines created directly in a test, closed after it."""
    made = []

    def track(engine):
        made.append(engine)
        return engine

    yield track
    for engine in made:
        engine.close()


# -- unsupported URLs ---------------------------------------------------------


@pytest.mark.parametrize("url, secret", [
    ("sqlite:///x", None),
    ("oracle://u:pw@h/db", "u:pw"),
    (f"oracle://scott:{SECRET}@db.example.com:1521/orcl", SECRET),
    (f"postgresql+psycopg://u:{SECRET}@h/db", SECRET),
    (f"u:{SECRET}@h/db", SECRET),  # no scheme at all
    ("", None),
])
def test_unsupported_scheme_is_invalid_url_listing_supported_schemes(url, secret):
    with pytest.raises(ValueError) as ei:
        fastsess.create_engine(url)
    err = ei.value
    assert isinstance(err, errors.InvalidURL) and isinstance(err, errors.FastsessError)
    message = str(err)
    for scheme in ("postgresql://", "postgres://", "mysql://", "mariadb://"):
        assert scheme in message
    if secret:
        assert secret not in message and secret not in repr(err)
    assert err.__cause__ is None


def test_invalid_url_names_the_rejected_scheme():
    with pytest.raises(errors.InvalidURL, match="oracle"):
        fastsess.create_engine("oracle://u:pw@h/db")


@pytest.mark.parametrize("url", [
    f"postgresql://u:{SECRET}@db.example.com:notaport/db",
    f"mysql://u:{SECRET}@db.example.com:99999/db",
])
def test_malformed_url_is_invalid_url_without_password(url):
    with pytest.raises(errors.InvalidURL) as ei:
        fastsess.create_engine(url)
    assert SECRET not in str(ei.value) and SECRET not in repr(ei.value)
    assert ei.value.__cause__ is None and ei.value.__suppress_context__


def test_non_string_url_is_type_error():
    with pytest.raises(TypeError):
        DatabaseURL.parse(12345)


# -- parsing ------------------------------------------------------------------


def test_parse_all_parts_with_percent_encoded_password():
    u = DatabaseURL.parse("postgresql://alice:p%40ss%2Fw0rd@db.example.com:6543/app_db"
                          "?sslmode=require&application_name=my%20app")
    assert u.dialect == "postgresql" and u.scheme == "postgresql"
    assert u.username == "alice"
    assert u.password == "p@ss/w0rd"
    assert u.host == "db.example.com"
    assert u.port == 6543
    assert u.database == "app_db"
    assert u.query == {"sslmode": "require", "application_name": "my app"}


@pytest.mark.parametrize("url, dialect, port", [
    ("postgres://u@h/db", "postgresql", None),
    ("mysql://u@h:3307/db", "mysql", 3307),
    ("mariadb://u@h/db", "mysql", None),
    ("PostgreSQL://u@h/db", "postgresql", None),
])
def test_scheme_aliases(url, dialect, port):
    u = DatabaseURL.parse(url)
    assert u.dialect == dialect and u.port == port and u.host == "h" and u.database == "db"


def test_parse_without_password_and_percent_encoded_user_and_database():
    u = DatabaseURL.parse("mysql://us%3Aer@localhost/my%2Ddb")
    assert u.username == "us:er" and u.password is None
    assert u.database == "my-db" and u.port is None and u.query == {}
    assert str(u) == "mysql://us%3Aer@localhost/my-db"
    assert "***" not in str(u)


def test_parse_ipv6_host():
    u = DatabaseURL.parse(f"postgresql://u:{SECRET}@[::1]:5433/db")
    assert u.host == "::1" and u.port == 5433
    assert str(u) == "postgresql://u:***@[::1]:5433/db"


def test_parse_is_idempotent_on_parsed_urls():
    u = DatabaseURL.parse("postgresql://u@h/db")
    assert DatabaseURL.parse(u) is u


def test_str_and_repr_censor_the_password():
    u = DatabaseURL.parse("postgresql://alice:p%40ss@db.example.com:6543/app?sslmode=require")
    assert str(u) == "postgresql://alice:***@db.example.com:6543/app?sslmode=require"
    assert "***" in repr(u)
    for text in (str(u), repr(u), f"{u}", f"{u!r}", u.censored()):
        assert "p@ss" not in text and "p%40ss" not in text


def test_scrub_censors_plain_and_percent_encoded_password():
    u = DatabaseURL.parse("mysql://alice:p%40ss@h/db")
    assert u.scrub("auth p@ss failed for p%40ss") == "auth *** failed for ***"
    assert DatabaseURL.parse("mysql://alice@h/db").scrub("no p@ss here") == "no p@ss here"


def test_password_in_query_arguments_is_censored():
    url = f"postgresql://alice@127.0.0.1:5432/test?password={SECRET}&sslmode=disable"
    u = DatabaseURL.parse(url)
    engine = fastsess.create_engine(url)
    try:
        for text in (str(u), repr(u), repr(engine)):
            assert SECRET not in text
    finally:
        engine.close()


# -- engine options -----------------------------------------------------------


def test_unknown_engine_option_is_type_error_naming_it():
    with pytest.raises(TypeError, match="max_sise"):
        fastsess.create_engine(f"postgresql://u:{SECRET}@h/db", max_sise=3)


def test_unknown_option_in_configure_factory_registers_nothing():
    with pytest.raises(TypeError) as ei:
        fastsess.configure_factory(f"mysql://u:{SECRET}@h/db", config={"bogus_knob": 1}, name="x")
    assert "bogus_knob" in str(ei.value) and SECRET not in str(ei.value)
    with pytest.raises(errors.EngineNotFound):
        fastsess.get_engine("x")


def test_engine_creation_does_not_connect(closing):
    # Nothing listens on port 1: creating the engine must still succeed.
    engine = closing(fastsess.create_engine("postgresql://u@127.0.0.1:1/db", max_size=2))
    assert engine.pool_stats()["size"] == 0 and not engine.closed
    assert engine.dialect_name == "postgresql" and engine.db_name == "db"


# -- registry -----------------------------------------------------------------


def test_configure_and_get_engine_by_name():
    engine = fastsess.configure_factory(URLS["postgresql"], config={"max_size": 3}, name="x")
    assert fastsess.get_engine("x") is engine
    assert engine.name == "x"
    assert engine.pool_stats()["max_size"] == 3
    assert "x" in fastsess.engine_factory.names()
    assert "'x'" in repr(engine)


def test_default_name():
    engine = fastsess.configure_factory(URLS["mysql"])
    assert fastsess.get_engine() is engine
    assert fastsess.get_engine("default") is engine


def test_get_missing_engine_is_engine_not_found_naming_it():
    fastsess.configure_factory(URLS["postgresql"], name="present")
    with pytest.raises(errors.EngineNotFound) as ei:
        fastsess.get_engine("missing")
    assert isinstance(ei.value, ValueError)
    assert "missing" in str(ei.value)


def test_reconfiguring_a_name_replaces_and_closes_the_old_engine():
    old = fastsess.configure_factory(URLS["postgresql"], name="x")
    new = fastsess.configure_factory(URLS["mysql"], name="x")
    assert old is not new and old.closed and not new.closed
    assert fastsess.get_engine("x") is new


def test_destroy_engine_closes_and_unregisters_it():
    engine = fastsess.configure_factory(URLS["postgresql"], config={"max_size": 3}, name="x")
    other = fastsess.configure_factory(URLS["mysql"], name="y")
    fastsess.destroy_engine("x")
    assert engine.closed
    assert "closed" in repr(engine)
    with pytest.raises(errors.EngineClosed):
        engine.get_session()
    with pytest.raises(errors.EngineNotFound):
        fastsess.get_engine("x")
    assert fastsess.get_engine("y") is other and not other.closed


def test_destroy_all_engines():
    engines = [fastsess.configure_factory(URLS["postgresql"], name=f"e{i}") for i in range(3)]
    fastsess.destroy_all_engines()
    assert all(e.closed for e in engines)
    assert fastsess.engine_factory.names() == []
    for i in range(3):
        with pytest.raises(errors.EngineNotFound):
            fastsess.get_engine(f"e{i}")
    fastsess.destroy_all_engines()  # nothing left: still fine


def test_close_twice_is_fine(closing):
    engine = closing(fastsess.create_engine(URLS["postgresql"]))
    engine.close()
    engine.close()
    assert engine.closed
    with pytest.raises(errors.EngineClosed):
        engine.get_session()


def test_destroyed_engine_refuses_sessions_taken_before(dialect, url):
    engine = fastsess.configure_factory(url, name="x")
    s = engine.get_session()
    assert s.execute("SELECT 1 AS one").fetchall() == [{"one": 1}]
    s.close()
    fastsess.destroy_engine("x")
    with pytest.raises(errors.SessionClosed):
        s.execute("SELECT 1")
    stats = engine.pool_stats()
    assert stats["size"] == 0 and stats["in_use"] == 0


def test_restalchemy_psycopg_pool_style_config_keys_are_accepted():
    config = {"pool_size": 7, "open": True, "num_workers": 3, "timeout": 12.5, "max_waiting": 4}
    engine = fastsess.configure_factory(URLS["postgresql"], config=config, name="ra")
    assert engine.pool_stats()["max_size"] == 7
    assert config == {"pool_size": 7, "open": True, "num_workers": 3, "timeout": 12.5,
                      "max_waiting": 4}  # the caller's dict is not consumed


def test_psycopg_pool_style_timeout_takes_effect(dialect, url):
    engine = fastsess.configure_factory(
        url, config={"pool_size": 1, "open": True, "num_workers": 2, "timeout": 0.3}, name="ra")
    held = engine.get_session()
    held.execute("SELECT 1")
    try:
        waiter = engine.get_session()
        started = time.monotonic()
        with pytest.raises(errors.PoolTimeout, match=r"within 0\.3 s"):  # not the default 30 s
            waiter.execute("SELECT 1")
        assert time.monotonic() - started >= 0.3  # and it did wait that long
        waiter.close()
    finally:
        held.close()


def test_psycopg_pool_style_max_waiting_takes_effect(dialect, url):
    engine = fastsess.configure_factory(
        url, config={"pool_size": 1, "open": True, "timeout": 10, "max_waiting": 1}, name="ra")
    held = engine.get_session()
    held.execute("SELECT 1")
    outcome = []

    def wait_in_thread():
        s = engine.get_session()
        try:
            s.execute("SELECT 1")
            outcome.append("got a connection")
        except errors.PoolError as e:
            outcome.append(e)
        finally:
            s.close()

    t = threading.Thread(target=wait_in_thread)
    try:
        t.start()
        deadline = time.monotonic() + 5
        while engine.pool_stats()["waiting"] != 1:
            assert time.monotonic() < deadline, "the first waiter never started waiting"
            time.sleep(0.01)
        # One caller already waits: the next one is refused at once, without
        # queueing behind it (the first is still the only waiter, still waiting).
        extra = engine.get_session()
        with pytest.raises(errors.PoolTooManyWaiting):
            extra.execute("SELECT 1")
        stats = engine.pool_stats()
        assert stats["waiting"] == 1 and stats["timeouts"] == 0 and outcome == []
        extra.close()
    finally:
        held.close()
        t.join(15)
    assert outcome == ["got a connection"]


def test_full_restalchemy_postgresql_pool_config_with_connect_kwargs(dialect, url):
    if dialect == "postgresql":
        kwargs = {"application_name": "fastsess-registry-test"}
        probe = "SHOW application_name"
        expected = "fastsess-registry-test"
    else:
        kwargs = {"init_command": "SET @fastsess_probe = 'registry-test'"}
        probe = "SELECT @fastsess_probe"
        expected = "registry-test"
    config = {"min_size": 1, "max_size": 5, "open": True, "timeout": 30, "max_waiting": 0,
              "max_lifetime": 3600, "max_idle": 300, "reconnect_timeout": 300, "num_workers": 3,
              "kwargs": kwargs}
    engine = fastsess.configure_factory(url, config=config, name="ra")
    stats = engine.pool_stats()
    assert stats["max_size"] == 5
    assert stats["size"] == 1 and stats["idle"] == 1  # min_size opened at configure time
    with engine.session_manager() as s:
        value = next(iter(s.execute(probe).fetchone().values()))
    assert value == expected
    assert engine.pool_stats()["connections_opened"] == 1


def test_psycopg_pool_name_option_is_ignored():
    engine = fastsess.configure_factory(URLS["postgresql"],
                                        config={"pool_size": 2, "name": "pg-pool"}, name="x")
    assert fastsess.get_engine("x") is engine and engine.name == "x"


# -- engines as objects --------------------------------------------------------


def test_engines_are_hashable_and_weakrefable():
    a = fastsess.configure_factory(URLS["postgresql"], name="a")
    b = fastsess.configure_factory(URLS["postgresql"], name="b")
    assert len({a, b, a}) == 2
    assert {a: 1, b: 2}[a] == 1
    ref = weakref.ref(a)
    assert ref() is a
    cache = weakref.WeakValueDictionary(a=a)
    assert cache["a"] is a
    # Once destroyed and dropped, nothing else keeps the engine alive.
    fastsess.destroy_engine("a")
    del a, cache
    gc.collect()
    assert ref() is None


def test_used_engine_can_be_collected(dialect, url):
    engine = fastsess.create_engine(url, max_size=2)
    with engine.session_manager() as s:
        s.execute("SELECT 1")
    ref = weakref.ref(engine)
    engine.close()
    del engine, s
    gc.collect()
    assert ref() is None


# -- the password never leaks -------------------------------------------------


@pytest.mark.parametrize("dialect_url", [
    f"postgresql://u:{SECRET}@127.0.0.1:1/db",
    f"mysql://u:{SECRET}@127.0.0.1:1/db",
    f"postgresql://u:{SECRET.replace('pw', '%40pw')}@127.0.0.1:1/db",
])
def test_password_never_in_repr_or_exception_messages(dialect_url):
    plain = DatabaseURL.parse(dialect_url).password
    encoded = dialect_url.split(":")[2].split("@")[0]
    secrets = {plain, encoded}
    engine = fastsess.configure_factory(dialect_url, config={"max_size": 1, "timeout": 0.2},
                                        name="leak")
    messages = [repr(engine), str(engine.url), repr(engine.url)]
    s = engine.get_session()
    messages.append(repr(s))
    with pytest.raises(errors.ConnectionFailed) as ei:  # nothing listens on port 1
        s.execute("SELECT 1")
    messages += [str(ei.value), repr(ei.value)]
    with pytest.raises(TypeError) as te:
        fastsess.create_engine(dialect_url, no_such_option=1)
    messages.append(str(te.value))
    fastsess.destroy_engine("leak")
    with pytest.raises(errors.EngineClosed) as ce:
        engine.get_session()
    messages.append(str(ce.value))
    with pytest.raises(errors.SessionClosed) as sc:
        s.execute("SELECT 1")
    messages.append(str(sc.value))
    messages.append(repr(engine))
    for text in messages:
        for secret in secrets:
            assert secret not in text, text


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_password_not_in_messages_of_a_working_engine(dialect, caplog):
    # The test server trusts local connections, so it ignores the password in this
    # URL and the engine really connects: check the messages of a live pool.
    caplog.set_level(logging.DEBUG)
    url = URLS[dialect].replace("postgres@", f"postgres:{SECRET}@", 1)
    assert SECRET in url
    engine = fastsess.configure_factory(url, config={"max_size": 1, "timeout": 0.1}, name="live")
    held = engine.get_session()
    assert held.execute("SELECT 1 AS one").fetchall() == [{"one": 1}]
    with pytest.raises(errors.PoolTimeout) as ei:
        engine.get_session().execute("SELECT 1")
    messages = [str(ei.value), repr(ei.value), repr(engine), repr(held)]
    held.close()
    fastsess.destroy_engine("live")
    with pytest.raises(errors.SessionClosed) as sc:
        held.execute("SELECT 1")
    messages += [str(sc.value), repr(engine)]
    messages += [logging.Formatter().format(r) for r in caplog.records]
    assert "live" in messages[0]  # the pool is named in the message
    for text in messages:
        assert SECRET not in text, text
