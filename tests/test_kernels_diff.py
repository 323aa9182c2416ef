"""Differential tests: the compiled kernels against their pure-Python twin, in one process.

For generated arguments both must return equal results, or raise the same
exception type with the same message.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import functools
import importlib
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import xxhash

import fastsess._speedups_py as twin


def _flag(name: str) -> bool:
    """An env switch read as fastsess._impl reads it ("", "0", "false", "no": unset)."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


if _flag("FASTSESS_PURE_PYTHON"):
    pytest.skip("FASTSESS_PURE_PYTHON is set", allow_module_level=True)
try:
    native = importlib.import_module("fastsess._speedups")
except ImportError as e:
    if _flag("FASTSESS_REQUIRE_EXTENSION"):
        raise
    pytest.skip(f"fastsess._speedups is not importable: {e}", allow_module_level=True)

pytestmark = pytest.mark.native

diff_settings = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def outcome(fn, *args):
    """What calling ``fn(*args)`` gives: ("ok", result) or ("raised", type, message)."""
    try:
        return ("ok", fn(*args))
    except Exception as e:  # noqa: BLE001 - the exception is the outcome
        return ("raised", type(e), str(e))


def both(name, make_args):
    """Outcomes of kernel ``name`` in both modules, each with fresh arguments."""
    return outcome(getattr(native, name), *make_args()), outcome(getattr(twin, name), *make_args())


def ordered(result):
    """Dicts in a result as item lists, so that key order is compared too."""
    if isinstance(result, dict):
        return list(result.items())
    if isinstance(result, list):
        return [ordered(r) for r in result]
    return result


# -- odd values: types whose isinstance()/len() run Python code ---------------


class Text(str):
    """A plain str subclass."""


class HugeText(str):
    """A str whose len() is far beyond any real string (exercises the size cap)."""

    def __len__(self):
        return 2**62 + 7


class LooksLikeBytes:
    """Not bytes, but isinstance(x, bytes) is True through __class__."""

    __class__ = bytes  # type: ignore[assignment]

    def __len__(self):
        return 5

    def __eq__(self, other):
        return other is self

    __hash__ = object.__hash__


Pair = collections.namedtuple("Pair", "a b")

chars = st.one_of(
    st.characters(),
    st.sampled_from(['"', "`", "\x00", ".", "é", "\ud800", "a", "b"]),
)
texts = st.text(alphabet=chars, max_size=8)
values = st.one_of(
    texts,
    st.integers(),
    st.floats(),
    st.none(),
    st.booleans(),
    st.binary(max_size=8),
    st.binary(max_size=8).map(bytearray),
    st.decimals(allow_nan=False),
    texts.map(Text),
    st.just(HugeText("h")),
    st.builds(LooksLikeBytes),
)
# Names that are mostly valid identifiers, often repeated.
idents = st.one_of(
    st.sampled_from(["a", "b", "c", "id", "name"]),
    st.text(alphabet=st.sampled_from('ab"`\x00é. '), min_size=0, max_size=4),
    st.text(alphabet="aé", min_size=60, max_size=66),
)
dialects = st.sampled_from(["postgresql", "mysql", "oracle"])
# Limits: mostly in range, some just outside it, and some of other types
# (both modules refuse them with the same TypeError).
max_params_st = st.one_of(
    st.integers(-2, 30),
    st.sampled_from([65534, 65535, 65536]),
    st.integers(2**63 - 3, 2**70),
    st.floats(0.5, 40),
    st.booleans(),
    st.decimals(1, 40, places=0),
)
max_bytes_st = st.one_of(
    st.just(0),
    st.none(),
    st.integers(-5, 700),
    st.integers(2**62 - 2, 2**62 + 2),
    st.integers(2**62, 2**130),
    st.floats(-1, 700),
    st.booleans(),
)


def shaped(row, kind):
    """``row`` (a list) as a tuple, list, namedtuple, str or bare iterator."""
    if kind == "tuple":
        return tuple(row)
    if kind == "list":
        return list(row)
    if kind == "pair" and len(row) == 2:
        return Pair(*row)
    if kind == "str":
        return "".join(str(v)[:1] or "x" for v in row)
    if kind == "iter":
        return iter(row)
    return tuple(row)


row_kinds = st.sampled_from(["tuple", "tuple", "list", "pair", "str", "iter"])


# -- rows -----------------------------------------------------------------------


@diff_settings
@given(
    names=st.lists(st.one_of(idents, st.integers(0, 3), st.just(["unhashable"])), max_size=6),
    data=st.data(),
)
def test_row_to_dict_same(names, data):
    n = len(names)
    row = data.draw(st.lists(values, min_size=max(0, n - 1), max_size=n + 1))
    kind = data.draw(row_kinds)
    names_kind = data.draw(st.sampled_from(["list", "tuple"]))

    def args():
        return shaped(names, names_kind), shaped(row, kind)

    got, want = both("row_to_dict", args)
    assert ordered(got) == ordered(want)


@diff_settings
@given(
    names=st.lists(st.one_of(idents, st.integers(0, 3)), max_size=6),
    data=st.data(),
)
def test_rows_to_dicts_same(names, data):
    n = len(names)
    rows = data.draw(
        st.lists(
            st.tuples(
                st.lists(values, min_size=n, max_size=n)
                | st.lists(values, max_size=n + 1),
                row_kinds,
            ),
            max_size=6,
        )
    )
    names_kind = data.draw(st.sampled_from(["list", "tuple"]))
    rows_kind = data.draw(st.sampled_from(["list", "iter"]))

    def args():
        made = [shaped(r, k) for r, k in rows]
        return shaped(names, names_kind), (made if rows_kind == "list" else iter(made))

    got, want = both("rows_to_dicts", args)
    assert ordered(got) == ordered(want)


# -- identifiers ----------------------------------------------------------------


@diff_settings
@given(
    dialect=st.one_of(dialects, st.integers(), st.just(["postgresql"])),
    name=st.one_of(idents, texts, texts.map(Text), st.integers(), st.none(), st.binary()),
)
def test_quote_identifier_same(dialect, name):
    got, want = both("quote_identifier", lambda: (dialect, name))
    assert got == want


@diff_settings
@given(
    dialect=dialects,
    table=st.one_of(
        st.lists(idents, min_size=1, max_size=3).map(".".join),
        texts,
        st.integers(),
        st.none(),
    ),
)
def test_quote_table_same(dialect, table):
    got, want = both("quote_table", lambda: (dialect, table))
    assert got == want


# -- statement builders ---------------------------------------------------------


def _builder_args(data, max_columns):
    """Arguments for build_insert/build_delete, mostly valid so that most calls
    get as far as chunking; the rest probe the checks."""
    valid = data.draw(st.integers(0, 9)) < 8
    if valid:
        dialect = data.draw(st.sampled_from(["postgresql", "mysql"]))
        table = data.draw(st.sampled_from(["t", "s.t", "tablé"]))
        column_names = st.sampled_from(["a", "b", "c", "é", "ĉ", "日", "a b", 'x"y', "x`y"])
        columns = data.draw(st.lists(column_names, min_size=1, max_size=max_columns))
        max_params = data.draw(st.one_of(st.integers(1, 30), max_params_st))
        kinds = st.sampled_from(["tuple", "tuple", "list", "pair", "str"])
    else:
        dialect = data.draw(dialects)
        table = data.draw(st.one_of(st.sampled_from(["t", "s.t", "tablé"]), idents))
        columns = data.draw(st.lists(idents, max_size=max_columns))
        max_params = data.draw(max_params_st)
        kinds = row_kinds
    width = len(columns)
    rows = data.draw(
        st.lists(
            st.tuples(
                st.lists(values, min_size=width, max_size=width)
                if valid
                else st.lists(values, max_size=width + 1),
                kinds,
            ),
            max_size=12,
        )
    )
    max_bytes = data.draw(st.one_of(st.integers(100, 2000), max_bytes_st))
    rows_kind = data.draw(st.sampled_from(["list", "tuple", "iter"]))

    def args():
        made = [shaped(r, k) for r, k in rows]
        made = {"list": made, "tuple": tuple(made), "iter": iter(made)}[rows_kind]
        return dialect, table, list(columns), made, max_params, max_bytes

    return args


@diff_settings
@given(data=st.data())
def test_build_insert_same(data):
    got, want = both("build_insert", _builder_args(data, 4))
    assert got == want


@diff_settings
@given(data=st.data())
def test_build_upsert_same(data):
    insert_args = _builder_args(data, 4)
    pool = ["a", "b", "c", "é", "z", 'x"y', "ĉ", "日"]
    keys = data.draw(st.lists(st.sampled_from(pool), max_size=2))
    updates = data.draw(st.one_of(st.none(), st.lists(st.sampled_from(pool), max_size=3)))

    def args():
        dialect, table, columns, rows, max_params, max_bytes = insert_args()
        return dialect, table, columns, rows, list(keys), updates, max_params, max_bytes

    got, want = both("build_upsert", args)
    assert got == want


@diff_settings
@given(data=st.data())
def test_build_delete_same(data):
    got, want = both("build_delete", _builder_args(data, 3))
    assert got == want


@diff_settings
@given(
    width=st.integers(1, 4),
    n=st.integers(0, 40),
    max_params=st.integers(1, 20),
    max_bytes=st.integers(1, 2000),
    text_len=st.integers(0, 30),
)
def test_build_insert_chunking_same(width, n, max_params, max_bytes, text_len):
    # Valid input at scale, so that chunk boundaries themselves are compared.
    columns = [f"c{i}" for i in range(width)]
    rows = [tuple("x" * ((i + j) % (text_len + 1)) for j in range(width)) for i in range(n)]
    for mb in (0, max_bytes):
        got, want = both("build_insert", lambda: ("mysql", "t", columns, rows, max_params, mb))
        assert got == want
        got, want = both("build_delete", lambda: ("mysql", "t", columns, rows, max_params, mb))
        assert got == want


def test_huge_lengths_same():
    # len() far beyond 2**64 bytes once scaled: sizes must not wrap around.
    for row in [(HugeText("a"), "b"), (HugeText("a"), HugeText("b")), ("a", "b")]:
        for max_bytes in (0, 1000, 2**62):
            args = ("mysql", "t", ["a", "b"], [("x", "y"), row], 10, max_bytes)
            assert outcome(native.build_insert, *args) == outcome(twin.build_insert, *args)


@pytest.mark.parametrize("limit", [decimal.Decimal(2), 2.0, True, None, "2", 2**64, -(2**64)])
def test_odd_limits_same(limit):
    rows = [(1,), (2,), (3,)]
    for args in [("mysql", "t", ["a"], rows, limit, 500), ("mysql", "t", ["a"], rows, 2, limit)]:
        assert outcome(native.build_insert, *args) == outcome(twin.build_insert, *args)
        assert outcome(native.build_delete, *args) == outcome(twin.build_delete, *args)
    args = ("t", ["a"], rows, repr, repr, "utf-8", True, limit)
    assert outcome(native.build_literal_insert, *args) == outcome(twin.build_literal_insert, *args)
    assert outcome(native.QueryCacheCore, None, limit) == outcome(twin.QueryCacheCore, None, limit)


# -- query-cache keys -----------------------------------------------------------


class Level(enum.IntEnum):
    """An IntEnum, encoded as its int under a b"x" wrapper."""

    LOW = 1
    HIGH = 2


class Filter:
    """A plain object (RESTAlchemy filter style): encoded from its __dict__."""

    def __init__(self, value):
        self.value = value


_zones = st.sampled_from([None, datetime.timezone.utc, datetime.timezone(datetime.timedelta(hours=5, minutes=30))])
key_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**200).flatmap(lambda n: st.sampled_from([n, -n])),
    st.floats(),
    st.sampled_from([0.0, -0.0, float("nan"), float("inf"), -float("inf")]),
    texts,
    st.binary(max_size=8),
    st.binary(max_size=8).map(bytearray),
    st.binary(max_size=8).map(memoryview),
    st.uuids(),
    st.datetimes(timezones=_zones),
    st.dates(),
    st.times(timezones=_zones),
    st.timedeltas(),
    st.decimals(),
    st.sampled_from(list(Level)),
    texts.map(Text),
)


def _containers(children):
    """Lists, tuples, dicts with text keys, sets of ints, and wrappers of ``children``."""
    return st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(texts, children, max_size=5),
        st.sets(st.integers(), max_size=5),
        st.frozensets(st.integers(-3, 3), max_size=5),
        st.tuples(children, children).map(lambda ab: Pair(*ab)),
        children.map(Filter),
    )


key_values = st.recursive(key_scalars, _containers, max_leaves=25)
# Values with an error somewhere inside: an unsupported type, or too deep.
key_faulty = st.one_of(
    st.lists(st.one_of(key_scalars, st.just(1j), st.builds(object)), max_size=4),
    st.integers(60, 70).map(lambda n: functools.reduce(lambda v, _: [v], range(n), 0)),
)


@diff_settings
@given(value=st.one_of(key_values, key_faulty))
def test_encode_key_same(value):
    assert outcome(native.encode_key, value) == outcome(twin.encode_key, value)


@diff_settings
@given(value=st.one_of(key_values, key_faulty))
def test_cache_key_same(value):
    got, want = outcome(native.cache_key, value), outcome(twin.cache_key, value)
    assert got == want
    if got[0] == "ok":
        assert got[1][0] == xxhash.xxh3_128_digest(got[1][1])


@diff_settings
@given(items=st.dictionaries(st.one_of(texts, st.integers(), st.tuples(st.integers())), key_values, max_size=8),
       data=st.data())
def test_encode_key_dict_order_insensitive(items, data):
    shuffled = dict(data.draw(st.permutations(list(items.items()))))
    for module in (native, twin):
        assert module.encode_key(shuffled) == module.encode_key(items)


# A domain where "the same query input" is decidable: nested lists and tuples of
# small ints, short strs, bools and None (equality that also compares types).
_plain_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.text(alphabet="ab\ud800", max_size=2))
plain_values = st.recursive(
    _plain_scalars,
    lambda children: st.lists(children, max_size=3) | st.lists(children, max_size=3).map(tuple),
    max_leaves=6,
)


def same_input(a, b):
    """Equal, and of the same types all the way down (so 1 and True differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_input(x, y) for x, y in zip(a, b))
    return a == b


@diff_settings
@given(a=plain_values, b=plain_values)
def test_encode_key_equal_only_for_the_same_input(a, b):
    for module in (native, twin):
        assert (module.encode_key(a) == module.encode_key(b)) == same_input(a, b)


@diff_settings
@given(stored=st.lists(key_values, max_size=4), probe=st.one_of(key_values, key_faulty))
def test_cache_get_same(stored, probe):
    def run(module):
        entries = collections.OrderedDict()
        for i, value in enumerate(stored):
            digest, encoding = module.cache_key(value)
            entries[digest] = (encoding, i)
        found = outcome(module.cache_get, entries, probe, "miss")
        return found, [e[1] for e in entries.values()]

    assert run(native) == run(twin)


@diff_settings
@given(calls=st.lists(st.tuples(st.sampled_from(["get_all", "query"]), key_values, st.booleans()),
                      max_size=12))
def test_query_cache_core_same(calls):
    engine = object()

    def run(module):
        core = module.QueryCacheCore(None, max_entries=3)
        made = []

        def fallback(**kwargs):
            made.append(kwargs.get("filters", kwargs.get("where_values")))
            return len(made)

        seen = []
        for entry, value, locked in calls:
            if entry == "get_all":
                seen.append(outcome(core.get_all, engine, "t", value, fallback, None, None, locked))
            else:
                seen.append(outcome(core.query, engine, "t", "a = %s", value, fallback, None, None,
                                    locked))
        return seen, (core.hits, core.misses, core.uncacheable), len(core._entries)

    assert run(native) == run(twin)


# -- MySQL literal inserts ------------------------------------------------------------


def _fake_literal(value):
    if isinstance(value, float) and value != value:
        raise ValueError("nan can not be used")
    return repr(value).encode("utf-8", "surrogatepass")


def _fake_string_literal(data):
    return b"'" + data.replace(b"'", b"''") + b"'"


@diff_settings
@given(columns=st.lists(idents, max_size=4), rows=st.lists(st.lists(values, max_size=4), max_size=6),
       kinds=st.lists(row_kinds, min_size=6, max_size=6), fast=st.booleans(),
       max_bytes=st.one_of(st.integers(-1, 400), st.just(1 << 20), st.integers(2**62 - 1, 2**62 + 1),
                           st.integers(2**63, 2**70), st.floats(1, 100), st.none(), st.booleans()),
       faulty=st.sampled_from([None, "str", "raise"]))
def test_build_literal_insert_same(columns, rows, kinds, fast, max_bytes, faulty):
    literal = {None: _fake_literal, "str": repr, "raise": _fake_literal}[faulty]
    string_literal = _fake_string_literal if faulty != "raise" else (lambda data: 1 / 0)

    def make_args():
        shaped_rows = [shaped(row, kind) for row, kind in zip(rows, kinds)]
        return ("t", columns, shaped_rows, literal, string_literal, "utf-8", fast, max_bytes)

    got, want = both("build_literal_insert", make_args)
    assert got == want


@diff_settings
@given(statement=st.one_of(
    st.lists(st.sampled_from(["%", "s", "%s", "%%", "a", "é", "$", "\x00", "d", " "]), max_size=40).map("".join),
    st.text(max_size=20),
    st.binary(max_size=5),
))
def test_dollar_params_same(statement):
    assert outcome(native.dollar_params, statement) == outcome(twin.dollar_params, statement)


# -- statement kinds ---------------------------------------------------------------------


@diff_settings
@given(statement=st.one_of(
    st.lists(st.sampled_from(["SELECT", "select", " ", "(", "\n", "FOR", "UPDATE", "SHARE", "NO KEY",
                              "LOCK IN SHARE MODE", "INSERT", "x", "SHOW", "DESC", "é"]),
             max_size=8).map(" ".join),
    st.text(max_size=12),
    st.binary(max_size=5),
    st.none(),
))
def test_statement_kind_same(statement):
    assert outcome(native.statement_kind, statement) == outcome(twin.statement_kind, statement)
    # Served from the memo the second time: the same answer.
    assert outcome(native.statement_kind, statement) == outcome(twin.statement_kind, statement)
