"""Query-cache keys (encode_key, cache_key), run against the compiled module and its twin."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import functools
import inspect
import uuid

import pytest
import xxhash



from .conftest import native, native_missing, twin


def L(n: int) -> bytes:
    """A 4-byte little-endian length, as the encoding writes it."""
    return n.to_bytes(4, "little")


def qualname(cls) -> bytes:
    """``cls``'s qualified name as the b"x"/b"o" encodings write it (tag excluded)."""
    name = f"{cls.__module__}.{cls.__qualname__}".encode()
    return L(len(name)) + name


class Color(enum.IntEnum):
    RED = 1


class Mood(str, enum.Enum):
    HAPPY = "1"


class Plain(enum.Enum):
    A = 1
    B = "b"


Pair = collections.namedtuple("Pair", "a b")


class EQ:
    """A filter object in RESTAlchemy's style: its state is in __dict__."""

    def __init__(self, value):
        self._value = value


class NE(EQ):
    """Another filter with the same attributes."""


class Slotted:
    """State in slots only, one of them private (mangled)."""

    __slots__ = ("a", "__b")

    def __init__(self, a=None, b=None):
        if a is not None:
            self.a = a
        if b is not None:
            self.__b = b


class SlottedChild(Slotted):
    """Slots from a base plus a __dict__."""


@dataclasses.dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int


class FakeDatetime(datetime.datetime):
    """Like freezegun's: a datetime subclass with a __dict__ that holds nothing."""


class MyDecimal(decimal.Decimal):
    """A Decimal subclass (its value lives in C fields)."""


def test_impl_tag(kernels):
    assert kernels.__impl__ == ("cython" if kernels is native else "python")


@pytest.mark.native
@pytest.mark.skipif(native is None, reason=str(native_missing))
@pytest.mark.parametrize("name", ["encode_key", "cache_key"])
def test_same_signatures(name):
    assert inspect.signature(getattr(native, name)) == inspect.signature(getattr(twin, name))


def test_impl_exports():
    from fastsess import _impl

    assert _impl.encode_key is _impl._k.encode_key
    assert _impl.cache_key is _impl._k.cache_key


# -- the format, pinned ---------------------------------------------------------

TYPICAL = ("get_all", 140234, "users", {"id": 5, "name": "x"}, None, None, False)

PINNED = [
    (None, b"N"),
    (True, b"T"),
    (False, b"F"),
    (0, b"i0;"),
    (-12, b"i-12;"),
    (2**70, b"i1180591620717411303424;"),
    (-(2**63), b"i-9223372036854775808;"),
    (1.0, b"f" + bytes.fromhex("3ff0000000000000")),
    (-0.0, b"f" + bytes.fromhex("8000000000000000")),
    ("", b"s" + L(0)),
    ("é", b"s" + L(2) + b"\xc3\xa9"),
    ("\ud800", b"s" + L(3) + b"\xed\xa0\x80"),  # a lone surrogate: surrogatepass
    (b"ab", b"b" + L(2) + b"ab"),
    (bytearray(b"ab"), b"y" + L(2) + b"ab"),
    (memoryview(b"ab"), b"v" + L(2) + b"ab"),
    ((1, 2), b"(" + L(2) + b"i1;i2;"),
    ([1, 2], b"[" + L(2) + b"i1;i2;"),
    ({"b": 1, "a": 2}, b"{" + L(2) + b"s" + L(1) + b"ai2;" + b"s" + L(1) + b"bi1;"),
    ({3, 1}, b"S" + L(2) + b"i1;i3;"),
    (frozenset([3, 1]), b"Z" + L(2) + b"i1;i3;"),
    (uuid.UUID(int=1), b"u" + bytes(15) + b"\x01"),
    (decimal.Decimal("1.0"), b"m" + L(3) + b"1.0"),
    (datetime.datetime(2024, 1, 2, 3, 4, 5), b"D" + L(19) + b"2024-01-02T03:04:05"),
    (datetime.date(2024, 1, 2), b"d" + L(10) + b"2024-01-02"),
    (datetime.time(3, 4), b"t" + L(8) + b"03:04:00"),
    (datetime.timedelta(1, 2, 3), b"R(" + L(3) + b"i1;i2;i3;"),
    (
        TYPICAL,
        b"(" + L(7) + b"s" + L(7) + b"get_all" + b"i140234;" + b"s" + L(5) + b"users"
        + b"{" + L(2) + b"s" + L(2) + b"idi5;" + b"s" + L(4) + b"name" + b"s" + L(1) + b"x"
        + b"NNF",
    ),
]


@pytest.mark.parametrize("value, expected", PINNED, ids=[repr(v)[:30] for v, _ in PINNED])
def test_pinned_encoding(kernels, value, expected):
    assert kernels.encode_key(value) == expected


def test_subclass_and_object_encodings(kernels):
    assert kernels.encode_key(Color.RED) == b"x" + qualname(Color) + b"i1;"
    assert kernels.encode_key(Mood.HAPPY) == b"x" + qualname(Mood) + b"s" + L(1) + b"1"
    assert kernels.encode_key(Plain.B) == b"x" + qualname(Plain) + b"s" + L(1) + b"b"
    assert kernels.encode_key(Pair(1, 2)) == b"x" + qualname(Pair) + b"(" + L(2) + b"i1;i2;"
    assert kernels.encode_key(EQ(5)) == b"o" + qualname(EQ) + b"{" + L(1) + b"s" + L(6) + b"_valuei5;"
    assert kernels.encode_key(Slotted(7)) == b"o" + qualname(Slotted) + b"{" + L(1) + b"s" + L(1) + b"ai7;"


# -- distinct inputs, distinct bytes ----------------------------------------------


def test_one_is_not_true_or_one_point_zero(kernels):
    values = [1, True, 1.0, "1", b"1", decimal.Decimal(1), Color.RED, Mood.HAPPY, Plain.A, [1], (1,), {1}]
    encoded = [kernels.encode_key(v) for v in values]
    assert len(set(encoded)) == len(values)


def test_empty_and_zero_values_distinct(kernels):
    values = [None, False, 0, 0.0, -0.0, "", b"", bytearray(), (), [], {}, set(), frozenset(),
              decimal.Decimal(0), datetime.timedelta(0)]
    assert len({kernels.encode_key(v) for v in values}) == len(values)


def test_tuple_and_list_differ(kernels):
    assert kernels.encode_key((1, 2)) != kernels.encode_key([1, 2])
    assert kernels.encode_key(Pair(1, 2)) != kernels.encode_key((1, 2))
    assert kernels.encode_key(([1], 2)) != kernels.encode_key([(1,), 2])


def test_length_prefixes_keep_boundaries(kernels):
    assert kernels.encode_key(("ab", "c")) != kernels.encode_key(("a", "bc"))
    assert kernels.encode_key([[1], 2]) != kernels.encode_key([[1, 2]])
    assert kernels.encode_key({"a": "b", "c": "d"}) != kernels.encode_key({"a": "bc", "": "d"})


def test_nan_and_decimal_forms(kernels):
    assert kernels.encode_key(float("nan")) == kernels.encode_key(float("nan"))
    assert kernels.encode_key(decimal.Decimal("1.0")) != kernels.encode_key(decimal.Decimal("1.00"))
    assert kernels.encode_key(decimal.Decimal("NaN")) == b"m" + L(3) + b"NaN"


def test_surrogates_stay_distinct(kernels):
    values = ["\ud800", "\udfff", "\ud800\udc00", "\U00010000", "?"]
    assert len({kernels.encode_key(v) for v in values}) == len(values)


def test_datetimes_uuids_bytes(kernels):
    utc = datetime.timezone.utc
    values = [
        datetime.datetime(2024, 1, 2, 3, 4, 5),
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc),
        datetime.datetime(2024, 1, 2, 3, 4, 5, 6),
        datetime.date(2024, 1, 2),
        datetime.time(3, 4, 5),
        datetime.time(3, 4, 5, tzinfo=utc),
        datetime.timedelta(days=1),
        datetime.timedelta(seconds=86400 - 1),
        uuid.UUID(int=1),
        uuid.UUID(int=2),
        b"\x00" * 16,
        bytearray(16),
        memoryview(bytes(16)),
    ]
    assert len({kernels.encode_key(v) for v in values}) == len(values)
    assert kernels.encode_key(datetime.datetime(2024, 1, 2, tzinfo=utc)) == (
        b"D" + L(25) + b"2024-01-02T00:00:00+00:00"
    )


def test_objects(kernels):
    assert kernels.encode_key(EQ(1)) == kernels.encode_key(EQ(1))
    assert kernels.encode_key(EQ(1)) != kernels.encode_key(EQ(2))
    assert kernels.encode_key(EQ(1)) != kernels.encode_key(NE(1))
    assert kernels.encode_key(EQ([1, {"a": EQ(None)}])) == kernels.encode_key(EQ([1, {"a": EQ(None)}]))
    assert kernels.encode_key(Slotted(1)) != kernels.encode_key(Slotted(1, 2))
    assert kernels.encode_key(Slotted(b=2)) != kernels.encode_key(Slotted(2))
    child = SlottedChild(1)
    child.extra = 3
    assert kernels.encode_key(child) != kernels.encode_key(SlottedChild(1))
    assert kernels.encode_key(Point(1, 2)) != kernels.encode_key(Point(2, 1))


def test_c_backed_subclasses_keep_their_value(kernels):
    # Their __dict__ is empty: encoding it would make every value collide.
    a, b = FakeDatetime(2024, 1, 1), FakeDatetime(2024, 1, 2)
    assert kernels.encode_key(a) != kernels.encode_key(b)
    assert kernels.encode_key(a) != kernels.encode_key(datetime.datetime(2024, 1, 1))
    assert kernels.encode_key(a) == b"x" + qualname(FakeDatetime) + kernels.encode_key(datetime.datetime(2024, 1, 1))
    assert kernels.encode_key(MyDecimal("1.5")) != kernels.encode_key(MyDecimal("2.5"))


# -- order-insensitive containers -------------------------------------------------


def test_dict_order_insensitive(kernels):
    a = {"id": 5, "name": "x", 3: None, (1, 2): [1]}
    b = {(1, 2): [1], 3: None, "name": "x", "id": 5}
    assert list(a) != list(b)
    assert kernels.encode_key(a) == kernels.encode_key(b)
    assert kernels.encode_key({"a": {"x": 1, "y": 2}}) == kernels.encode_key({"a": {"y": 2, "x": 1}})
    assert kernels.encode_key({1: "a"}) != kernels.encode_key({True: "a"})


def test_sets(kernels):
    assert kernels.encode_key({1, 2, 3}) == kernels.encode_key({3, 2, 1})
    assert kernels.encode_key(set(range(100))) == kernels.encode_key(set(reversed(range(100))))
    assert kernels.encode_key({1, 2}) != kernels.encode_key(frozenset({1, 2}))
    assert kernels.encode_key({1}) != kernels.encode_key({True})
    assert kernels.encode_key({"a", 1}) == kernels.encode_key({1, "a"})


def test_large_containers_and_values(kernels):
    d = {f"k{i}": i for i in range(1000)}
    assert kernels.encode_key(d) == kernels.encode_key(dict(reversed(d.items())))
    big = "x" * 100_000
    assert kernels.encode_key(big) == b"s" + L(100_000) + big.encode()


def test_nested(kernels):
    value = {"filters": [{"id": {"in": (1, 2, 3)}}, None], "order": ("name", True), "page": 2.5}
    again = {"page": 2.5, "order": ("name", True), "filters": [{"id": {"in": (1, 2, 3)}}, None]}
    assert kernels.encode_key(value) == kernels.encode_key(again)
    assert kernels.encode_key(value) != kernels.encode_key({**value, "page": 3})


def test_unhashable_inputs_work(kernels):
    assert kernels.encode_key([[1], {"a": [2]}]) == b"[" + L(2) + b"[" + L(1) + b"i1;" + b"{" + L(1) + (
        b"s" + L(1) + b"a" + b"[" + L(1) + b"i2;"
    )
    h, encoded = kernels.cache_key({"ids": [1, 2, 3]})
    assert encoded == kernels.encode_key({"ids": [1, 2, 3]})


# -- errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, name",
    [
        (object(), "object"),
        (1j, "complex"),
        (len, "builtin_function_or_method"),
        (lambda: 1, "function"),
        (ValueError("x"), "ValueError"),
        (int, "type"),
        (functools.partial(len, "x"), "partial"),
        (iter([]), "list_iterator"),
    ],
)
def test_type_error(kernels, value, name):
    with pytest.raises(TypeError) as info:
        kernels.encode_key([1, {"a": value}])
    assert str(info.value) == f"cannot build a cache key from a {name}"


def _nested_lists(levels):
    """``levels`` lists, each the only item of the one around it."""
    value = 1
    for _ in range(levels):
        value = [value]
    return value


def test_depth_limit(kernels):
    assert kernels.encode_key(_nested_lists(64)).endswith(b"i1;")
    with pytest.raises(ValueError) as info:
        kernels.encode_key(_nested_lists(65))
    assert str(info.value) == "value nests deeper than 64 levels"
    deep_dict = {}
    for _ in range(70):
        deep_dict = {"k": deep_dict}
    with pytest.raises(ValueError, match="^value nests deeper than 64 levels$"):
        kernels.encode_key(deep_dict)


def test_cycles_raise(kernels):
    loop = []
    loop.append(loop)
    d = {}
    d["self"] = d
    obj = EQ(None)
    obj._value = obj
    for value in (loop, d, obj, [1, (2, loop)]):
        with pytest.raises(ValueError, match="^value nests deeper than 64 levels$"):
            kernels.encode_key(value)


def test_errors_raised_by_the_value_propagate(kernels):
    class Broken(datetime.tzinfo):
        def utcoffset(self, dt):
            raise ZeroDivisionError("no offset")

    with pytest.raises(ZeroDivisionError, match="no offset"):
        kernels.encode_key(datetime.datetime(2024, 1, 1, tzinfo=Broken()))


# -- cache_key ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, TYPICAL, "", [1, 2], {"a": {1, 2}}, 2**100, EQ(1)])
def test_cache_key_is_xxh3_128_of_encoding(kernels, value):
    h, encoded = kernels.cache_key(value)
    assert encoded == kernels.encode_key(value)
    assert type(h) is bytes and len(h) == 16
    assert h == xxhash.xxh3_128_digest(encoded, seed=0)
    assert int.from_bytes(h, "big") == xxhash.xxh3_128(encoded).intdigest()


@pytest.mark.parametrize(
    "value, digest",
    [
        (None, 130831410593852148187051849490122346966),
        ("", 62003543267699719819066094809125778465),
        ([1, 2], 238753746903011953913589924212666791418),
        (TYPICAL, 8825182628196658821506467558791569526),
    ],
)
def test_cache_key_pinned(kernels, value, digest):
    assert int.from_bytes(kernels.cache_key(value)[0], "big") == digest


def test_cache_key_errors_match_encode_key(kernels):
    with pytest.raises(TypeError, match="^cannot build a cache key from a complex$"):
        kernels.cache_key((1j,))


# -- cache_get: the hit path ----------------------------------------------------------


def _entries_with(kernels, value, result):
    digest, encoding = kernels.cache_key(value)
    return collections.OrderedDict([(digest, (encoding, result))])


def test_cache_get_hit_returns_the_stored_object_and_moves_it_last(kernels):
    result = [{"id": 1}]
    entries = _entries_with(kernels, ("a", 1), result)
    entries.update(_entries_with(kernels, ("b", 2), "other"))
    assert kernels.cache_get(entries, ("a", 1), None) is result
    assert list(entries.values())[-1][1] is result  # most recently used is last


def test_cache_get_miss_gives_the_default_and_leaves_the_order(kernels):
    entries = _entries_with(kernels, ("a", 1), "x")
    entries.update(_entries_with(kernels, ("b", 2), "y"))
    before = list(entries)
    default = object()
    assert kernels.cache_get(entries, ("a", True), default) is default  # 1 and True differ
    assert list(entries) == before


def test_cache_get_compares_the_encoding_not_just_the_digest(kernels):
    # A forged collision: the slot of one input holds another input's entry.
    digest_a, _ = kernels.cache_key(("a", 1))
    _, encoding_b = kernels.cache_key(("b", 2))
    entries = collections.OrderedDict([(digest_a, (encoding_b, "result of b"))])
    assert kernels.cache_get(entries, ("a", 1), "miss") == "miss"


def test_cache_get_uncacheable_input_is_a_miss(kernels):
    entries = collections.OrderedDict()
    assert kernels.cache_get(entries, (1j,), "miss") == "miss"
    nested = functools.reduce(lambda v, _: [v], range(70), 0)
    assert kernels.cache_get(entries, nested, "miss") == "miss"


def test_cache_get_wants_an_ordered_dict(kernels):
    with pytest.raises(TypeError, match="^entries must be an OrderedDict, got dict$"):
        kernels.cache_get({}, 1, None)


# -- QueryCacheCore: get_all / query without a database -------------------------------


class _Table:
    name = "users"


class _Calls:
    """A fallback that records its calls and returns a fresh list each time."""

    def __init__(self):
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return [len(self.calls)]


def test_core_get_all_hits_misses_and_locked(kernels):
    session, engine = object(), object()
    core = kernels.QueryCacheCore(session, max_entries=4)
    fallback = _Calls()
    first = core.get_all(engine, _Table, {"id": [1, 2]}, fallback, limit=5, order_by={"id": "asc"})
    again = core.get_all(engine, _Table, {"id": [1, 2]}, fallback, limit=5, order_by={"id": "asc"})
    assert again is first and len(fallback.calls) == 1
    assert fallback.calls[0] == {"filters": {"id": [1, 2]}, "session": session, "limit": 5,
                                 "order_by": {"id": "asc"}, "locked": False}
    other_order = core.get_all(engine, _Table, {"id": [1, 2]}, fallback, limit=5,
                               order_by={"id": "desc"})
    assert other_order is not first
    locked = core.get_all(engine, _Table, {"id": [1, 2]}, fallback, limit=5,
                          order_by={"id": "asc"}, locked=True)
    assert locked is not first and fallback.calls[-1]["locked"] is True
    assert (core.hits, core.misses, core.uncacheable) == (1, 2, 0)
    assert len(core._entries) == 2


def test_core_table_name_from_str_or_object(kernels):
    core = kernels.QueryCacheCore(None)
    engine, fallback = object(), _Calls()
    by_object = core.get_all(engine, _Table, None, fallback)
    assert core.get_all(engine, "users", None, fallback) is by_object


def test_core_query_never_caches_locking_reads(kernels):
    core = kernels.QueryCacheCore(None)
    engine, fallback = object(), _Calls()
    for _ in range(2):
        core.query(engine, "t", "id = %s FOR UPDATE", [1], fallback)
    assert len(fallback.calls) == 2 and len(core._entries) == 0
    first = core.query(engine, "t", "id = %s", [1], fallback)
    assert core.query(engine, "t", "id = %s", [1], fallback) is first
    assert core.query(engine, "t", "id = %s", [2], fallback) is not first


def test_core_key_is_taken_before_the_fallback_runs(kernels):
    # A fallback that mutates its filters must not file its result under the
    # mutated filters: a later query for those would get the wrong rows.
    core = kernels.QueryCacheCore(None)
    engine = object()

    def mutating(**kwargs):
        kwargs["filters"]["id"] = 2
        return ["rows of id 1"]

    filters = {"id": 1}
    core.get_all(engine, "t", filters, mutating)
    assert core.get_all(engine, "t", {"id": 2}, lambda **kw: ["rows of id 2"]) == ["rows of id 2"]


def test_core_uncacheable_runs_the_fallback_every_time(kernels):
    core = kernels.QueryCacheCore(None)
    fallback = _Calls()
    core.get_all(object(), "t", {"x": 1j}, fallback)
    core.get_all(object(), "t", {"x": 1j}, fallback)
    assert len(fallback.calls) == 2
    assert (core.hits, core.misses, core.uncacheable) == (0, 0, 2)


def test_core_lru_bound(kernels):
    core = kernels.QueryCacheCore(None, max_entries=2)
    engine, fallback = object(), _Calls()
    a = core.get_all(engine, "t", 1, fallback)
    core.get_all(engine, "t", 2, fallback)
    core.get_all(engine, "t", 1, fallback)  # a is now the most recent
    core.get_all(engine, "t", 3, fallback)  # evicts 2
    assert core.get_all(engine, "t", 1, fallback) is a
    calls = len(fallback.calls)
    core.get_all(engine, "t", 2, fallback)
    assert len(fallback.calls) == calls + 1


@pytest.mark.parametrize("max_entries, exc_type, message", [
    (0, ValueError, "max_entries must be at least 1, got 0"),
    (2**31, ValueError, f"max_entries must be at most {2**31 - 1}, got {2**31}"),
    (1.5, TypeError, "max_entries must be an int, got float"),
    (True, TypeError, "max_entries must be an int, got bool"),
    (None, TypeError, "max_entries must be an int, got NoneType"),
])
def test_core_checks_its_bound(kernels, max_entries, exc_type, message):
    with pytest.raises(exc_type) as exc:
        kernels.QueryCacheCore(None, max_entries=max_entries)
    assert str(exc.value) == message
    assert kernels.QueryCacheCore(None, max_entries=2**31 - 1).max_entries == 2**31 - 1


# -- statement kinds and fetchall ---------------------------------------------------


@pytest.mark.parametrize("statement, kind", [
    ("SELECT 1", (True, True)),
    ("  (select a from t) union (select b from u)", (True, True)),
    ("SHOW TABLES", (True, True)),
    ("SELECT * FROM t WHERE id = %s FOR UPDATE", (True, False)),
    ("select * from t lock in share mode", (True, False)),
    ("INSERT INTO t VALUES (1)", (False, False)),
    ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", (False, False)),
    (b"SELECT 1", (False, False)),  # bytes are never parsed: treated as a write
])
def test_statement_kind(kernels, statement, kind):
    assert kernels.statement_kind(statement) == kind


def test_long_statements_are_not_memoized(kernels):
    big = "SELECT " + ", ".join(["1"] * 3000)
    assert kernels.statement_kind(big) == (True, True)
    assert big not in kernels._STATEMENT_KINDS
    assert kernels.statement_kind("SELECT 2") == (True, True)
    assert kernels._STATEMENT_KINDS["SELECT 2"] == (True, True)


def test_statement_kind_memo_is_bounded(kernels):
    for i in range(5000):
        assert kernels.statement_kind(f"SELECT {i} FOR UPDATE") == (True, False)
    assert 0 < len(kernels._STATEMENT_KINDS) <= 4096
    last = "SELECT 4999 FOR UPDATE"
    assert kernels.statement_kind(last) is kernels._STATEMENT_KINDS[last]


class _FakeSession:
    def __init__(self):
        self.ran = []

    def execute(self, statement, params=None):
        self.ran.append((statement, params))
        rows = [{"n": len(self.ran)}]
        return type("R", (), {"fetchall": lambda self: rows})()


def test_core_fetchall_caches_plain_reads_only(kernels):
    session = _FakeSession()
    core = kernels.QueryCacheCore(session)
    first = core.fetchall("SELECT n FROM t WHERE id = %s", (1,))
    assert core.fetchall("SELECT n FROM t WHERE id = %s", (1,)) is first
    assert core.fetchall("SELECT n FROM t WHERE id = %s", (True,)) is not first
    core.fetchall("SELECT n FROM t WHERE id = %s FOR UPDATE", (1,))
    core.fetchall("SELECT n FROM t WHERE id = %s FOR UPDATE", (1,))
    core.fetchall("UPDATE t SET n = 1 RETURNING n", None)
    assert len(session.ran) == 5
    assert (core.hits, core.misses) == (1, 2)
