"""Behaviour of the row and SQL kernels, run against the compiled module and its twin."""

from __future__ import annotations

import collections
import decimal
import inspect
import time

import pytest

from fastsess import _kernels_common

from .conftest import native, native_missing, twin


def test_impl_tag(kernels):
    assert kernels.__impl__ == ("cython" if kernels is native else "python")


@pytest.mark.native
@pytest.mark.skipif(native is None, reason=str(native_missing))
@pytest.mark.parametrize(
    "name",
    ["row_to_dict", "rows_to_dicts", "quote_identifier", "quote_table", "build_insert", "build_upsert",
     "build_delete", "build_literal_insert", "dollar_params", "encode_key", "cache_key", "cache_get",
     "statement_kind", "column_labels", "decoded_names"],
)
def test_same_signatures(name):
    assert inspect.signature(getattr(native, name)) == inspect.signature(getattr(twin, name))


# -- row_to_dict / rows_to_dicts ----------------------------------------------

Point = collections.namedtuple("Point", "x y z")


@pytest.mark.parametrize(
    "names, row",
    [
        (["a", "b", "c"], (1, "x", None)),
        (("a", "b", "c"), [1, 2.5, b"z"]),
        (["a", "b", "a"], (1, 2, 3)),  # duplicate: last value, first position
        (["a", "a", "a"], (1, 2, 3)),
        ([], ()),
        ([1, 2.5, None], ("i", "f", "n")),  # non-str keys
        ("ab", "xy"),  # any sequence with len()
        (["x", "y", "z"], Point(1, 2, 3)),
        (range(3), range(10, 13)),
    ],
)
def test_row_to_dict_is_dict_zip(kernels, names, row):
    got = kernels.row_to_dict(names, row)
    want = dict(zip(names, row))
    assert got == want
    assert list(got) == list(want)


def test_row_to_dict_duplicates(kernels):
    got = kernels.row_to_dict(["id", "name", "id"], (1, "n", 2))
    assert list(got.items()) == [("id", 2), ("name", "n")]


@pytest.mark.parametrize(
    "names, row, message",
    [
        (["a", "b"], (1, 2, 3), "row has 3 values, expected 2"),
        (["a", "b", "c"], (1,), "row has 1 values, expected 3"),
        ([], (1,), "row has 1 values, expected 0"),
    ],
)
def test_row_to_dict_length_mismatch(kernels, names, row, message):
    with pytest.raises(ValueError) as exc:
        kernels.row_to_dict(names, row)
    assert str(exc.value) == message


def test_row_to_dict_errors(kernels):
    with pytest.raises(TypeError, match=r"^object of type 'int' has no len\(\)$"):
        kernels.row_to_dict(["a"], 5)
    with pytest.raises(TypeError, match=r"^unhashable type: 'list'$"):
        kernels.row_to_dict([["a"]], (1,))


def test_rows_to_dicts(kernels):
    names = ["id", "name", "id"]
    rows = [(1, "a", 10), [2, "b", 20], Point(3, "c", 30)]
    got = kernels.rows_to_dicts(names, rows)
    assert got == [dict(zip(names, r)) for r in rows]
    assert got[0] is not got[1]
    assert [list(d) for d in got] == [["id", "name"]] * 3


def test_column_labels(kernels):
    description = [("id", 23, None), ("名前", 25, None), ("id", 23, None)]
    assert kernels.column_labels(description) == ("id", "名前", "id")
    assert kernels.column_labels(tuple(description)) == ("id", "名前", "id")
    assert kernels.column_labels(()) == ()
    assert kernels.column_labels(None) is None
    with pytest.raises(TypeError):
        kernels.column_labels(5)


def test_decoded_names(kernels):
    fields = ["id".encode(), "prénom".encode("utf-8"), "prénom".encode("latin-1")]
    assert kernels.decoded_names(fields.__getitem__, 2, "utf-8") == ("id", "prénom")
    assert kernels.decoded_names(fields.__getitem__, 3, "latin-1")[2] == "prénom"
    assert kernels.decoded_names(fields.__getitem__, 0, "utf-8") == ()
    with pytest.raises(UnicodeDecodeError):
        kernels.decoded_names(fields.__getitem__, 3, "utf-8")


def test_rows_to_dicts_fresh_dicts(kernels):
    got = kernels.rows_to_dicts(("a",), [(1,), (1,)])
    got[0]["a"] = 99
    assert got[1] == {"a": 1}


def test_rows_to_dicts_inputs(kernels):
    assert kernels.rows_to_dicts(["a", "b"], []) == []
    assert kernels.rows_to_dicts([], [(), ()]) == [{}, {}]
    assert kernels.rows_to_dicts(["a", "b"], iter([(1, 2), "xy"])) == [
        {"a": 1, "b": 2},
        {"a": "x", "b": "y"},
    ]
    assert kernels.rows_to_dicts([1, 2], [(1, 2)]) == [{1: 1, 2: 2}]


def test_rows_to_dicts_length_mismatch(kernels):
    with pytest.raises(ValueError) as exc:
        kernels.rows_to_dicts(["a", "b", "c"], [(1, 2, 3), (1, 2)])
    assert str(exc.value) == "row has 2 values, expected 3"


def test_rows_to_dicts_errors(kernels):
    with pytest.raises(TypeError, match=r"^'int' object is not iterable$"):
        kernels.rows_to_dicts(["a"], 5)
    with pytest.raises(TypeError, match=r"^object of type 'int' has no len\(\)$"):
        kernels.rows_to_dicts(["a"], [5])


# -- quote_identifier / quote_table ---------------------------------------------


@pytest.mark.parametrize(
    "dialect, name, quoted",
    [
        ("postgresql", "users", '"users"'),
        ("postgresql", "Mixed Case`x", '"Mixed Case`x"'),
        ("postgresql", "a" * 63, '"' + "a" * 63 + '"'),
        ("postgresql", "é" * 31, '"' + "é" * 31 + '"'),  # 62 UTF-8 bytes
        ("mysql", "users", "`users`"),
        ("mysql", 'say "hi"', '`say "hi"`'),
        ("mysql", "a" * 64, "`" + "a" * 64 + "`"),
        ("mysql", "é" * 64, "`" + "é" * 64 + "`"),  # MySQL counts characters
    ],
)
def test_quote_identifier(kernels, dialect, name, quoted):
    assert kernels.quote_identifier(dialect, name) == quoted


@pytest.mark.parametrize(
    "dialect, name, exc_type, message",
    [
        ("postgresql", 'a"b', ValueError, "identifier 'a\"b' contains the quote character \""),
        ("mysql", "a`b", ValueError, "identifier 'a`b' contains the quote character `"),
        ("postgresql", "a\x00b", ValueError, "identifier 'a\\x00b' contains a NUL character"),
        ("mysql", "\x00`", ValueError, "identifier '\\x00`' contains a NUL character"),
        ("postgresql", "", ValueError, "identifier must not be empty"),
        ("mysql", "", ValueError, "identifier must not be empty"),
        ("postgresql", "a" * 64, ValueError, f"identifier '{'a' * 64}' is longer than 63 bytes"),
        ("postgresql", "é" * 32, ValueError, f"identifier '{'é' * 32}' is longer than 63 bytes"),
        ("mysql", "a" * 65, ValueError, f"identifier '{'a' * 65}' is longer than 64 characters"),
        ("postgresql", 5, TypeError, "identifier must be a str, got int"),
        ("mysql", b"users", TypeError, "identifier must be a str, got bytes"),
        ("mysql", None, TypeError, "identifier must be a str, got NoneType"),
        ("sqlite", "users", ValueError, "unknown dialect 'sqlite', expected one of: mysql, postgresql"),
        ("sqlite", 5, ValueError, "unknown dialect 'sqlite', expected one of: mysql, postgresql"),
    ],
)
def test_quote_identifier_refuses(kernels, dialect, name, exc_type, message):
    with pytest.raises(exc_type) as exc:
        kernels.quote_identifier(dialect, name)
    assert type(exc.value) is exc_type
    assert str(exc.value) == message


def test_quote_identifier_lone_surrogate(kernels):
    # PostgreSQL counts UTF-8 bytes; a lone surrogate cannot be encoded.
    with pytest.raises(UnicodeEncodeError):
        kernels.quote_identifier("postgresql", "a\ud800")
    assert kernels.quote_identifier("mysql", "a\ud800") == "`a\ud800`"


def test_quote_identifier_str_subclass(kernels):
    class Name(str):
        pass

    assert kernels.quote_identifier("postgresql", Name("x")) == '"x"'


@pytest.mark.parametrize(
    "dialect, table, quoted",
    [
        ("postgresql", "users", '"users"'),
        ("postgresql", "public.users", '"public"."users"'),
        ("mysql", "shop.orders", "`shop`.`orders`"),
    ],
)
def test_quote_table(kernels, dialect, table, quoted):
    assert kernels.quote_table(dialect, table) == quoted


@pytest.mark.parametrize(
    "table, exc_type, message",
    [
        (5, TypeError, "table name must be a str, got int"),
        ("", ValueError, "identifier must not be empty"),
        ("a.", ValueError, "identifier must not be empty"),
        ("a.b`c", ValueError, "identifier 'b`c' contains the quote character `"),
    ],
)
def test_quote_table_refuses(kernels, table, exc_type, message):
    with pytest.raises(exc_type) as exc:
        kernels.quote_table("mysql", table)
    assert str(exc.value) == message


# -- build_insert ---------------------------------------------------------------


def test_build_insert_small(kernels):
    got = kernels.build_insert("postgresql", "public.t", ["id", "name"], [(1, "a"), [2, "b"]], 100)
    assert got == [
        (
            'INSERT INTO "public"."t" ("id", "name") VALUES (%s, %s), (%s, %s)',
            [1, "a", 2, "b"],
        )
    ]


def test_build_insert_mysql(kernels):
    got = kernels.build_insert("mysql", "t", ("a",), [("x",)], 10)
    assert got == [("INSERT INTO `t` (`a`) VALUES (%s)", ["x"])]


def test_build_insert_empty_rows(kernels):
    assert kernels.build_insert("postgresql", "t", ["a"], [], 10) == []
    assert kernels.build_insert("mysql", "t", ["a"], iter(()), 10, 1000) == []


def test_build_insert_chunks_at_max_params(kernels):
    # 3 columns, 7 parameters per statement: 2 rows per statement.
    rows = [(i, i + 1, i + 2) for i in range(0, 15, 3)]
    got = kernels.build_insert("postgresql", "t", ["a", "b", "c"], rows, 7)
    two = 'INSERT INTO "t" ("a", "b", "c") VALUES (%s, %s, %s), (%s, %s, %s)'
    one = 'INSERT INTO "t" ("a", "b", "c") VALUES (%s, %s, %s)'
    assert got == [
        (two, [0, 1, 2, 3, 4, 5]),
        (two, [6, 7, 8, 9, 10, 11]),
        (one, [12, 13, 14]),
    ]


def test_build_insert_chunks_at_max_bytes(kernels):
    # Head "INSERT INTO `t` (`a`) VALUES " is 29 bytes; a row costs
    # len("(%s)") + 2 = 6 plus 4 * len(text) + 4: 18, 22 and 14 bytes here.
    rows = [("xx",), ("yyy",), ("z",)]
    one = "INSERT INTO `t` (`a`) VALUES (%s)"
    two = "INSERT INTO `t` (`a`) VALUES (%s), (%s)"
    assert kernels.build_insert("mysql", "t", ["a"], rows, 100, 29 + 18 + 22) == [
        (two, ["xx", "yyy"]),
        (one, ["z"]),
    ]
    assert kernels.build_insert("mysql", "t", ["a"], rows, 100, 29 + 18 + 22 - 1) == [
        (one, ["xx"]),
        (two, ["yyy", "z"]),
    ]
    # max_params still applies inside the byte limit.
    assert kernels.build_insert("mysql", "t", ["a"], rows, 1, 10**6) == [
        (one, ["xx"]),
        (one, ["yyy"]),
        (one, ["z"]),
    ]


def test_build_insert_byte_estimates(kernels):
    # bytes: 2 * len + 3 + 4; anything else: 40 + 4.
    head = len("INSERT INTO `t` (`a`, `b`) VALUES ")
    row = len("(%s, %s)") + 2 + (2 * 3 + 7) + 44
    got = kernels.build_insert("mysql", "t", ["a", "b"], [(b"abc", 1)] * 2, 100, head + 2 * row)
    assert len(got) == 1
    got = kernels.build_insert("mysql", "t", ["a", "b"], [(b"abc", 1)] * 2, 100, head + 2 * row - 1)
    assert len(got) == 2


def test_build_insert_row_larger_than_max_bytes(kernels):
    rows = [("xx",), ("yyy",), ("z",)]
    with pytest.raises(ValueError) as exc:
        kernels.build_insert("mysql", "t", ["a"], rows, 100, 50)
    assert str(exc.value) == "a row needs about 51 bytes, more than the 50 one statement can carry"


@pytest.mark.parametrize(
    "columns, rows, max_params, message",
    [
        ([], [(1,)], 10, "an insert needs at least one column"),
        (["a", "b"], [(1, 2), (1,)], 10, "row 1 has 1 values, expected 2"),
        (["a"], [(1,)], 0, "max_params must be at least 1, got 0"),
        (["a"], [(1,)], -3, "max_params must be at least 1, got -3"),
        (["a", "b", "c"], [(1, 2, 3)], 2, "a row needs 3 parameters, more than the 2 one statement can carry"),
        (["a", "a`"], [(1, 2)], 10, "identifier 'a`' contains the quote character `"),
    ],
)
def test_build_insert_refuses(kernels, columns, rows, max_params, message):
    with pytest.raises(ValueError) as exc:
        kernels.build_insert("mysql", "t", columns, rows, max_params)
    assert str(exc.value) == message


def test_build_insert_checks_table_before_columns(kernels):
    with pytest.raises(ValueError, match="^identifier 'x`' contains"):
        kernels.build_insert("mysql", "x`", ["y`"], [], 10)


def test_build_insert_non_ascii_head(kernels):
    got = kernels.build_insert("postgresql", "tablé", ["ü"], [(1,), (2,)], 10)
    assert got == [('INSERT INTO "tablé" ("ü") VALUES (%s), (%s)', [1, 2])]


def test_build_insert_general_rows(kernels):
    # Any sized iterable row is accepted and flattened as list.extend() does.
    got = kernels.build_insert("mysql", "t", ["a", "b"], ["xy", Point(1, 2, 3)[:2], range(2)], 100)
    assert got == [("INSERT INTO `t` (`a`, `b`) VALUES (%s, %s), (%s, %s), (%s, %s)", ["x", "y", 1, 2, 0, 1])]


# -- limit arguments ------------------------------------------------------------

_BUILDERS = {
    "build_insert": lambda k, mp, mb: k.build_insert("mysql", "t", ["a"], [(1,)], mp, mb),
    "build_upsert": lambda k, mp, mb: k.build_upsert("mysql", "t", ["a"], [(1,)], ["a"], None, mp, mb),
    "build_delete": lambda k, mp, mb: k.build_delete("mysql", "t", ["a"], [(1,)], mp, mb),
}
_MAX_BYTES = _kernels_common.MAX_BYTES_LIMIT


@pytest.mark.parametrize("builder", sorted(_BUILDERS))
@pytest.mark.parametrize(
    "max_params, max_bytes, exc_type, message",
    [
        (1.0, 0, TypeError, "max_params must be an int, got float"),
        (True, 0, TypeError, "max_params must be an int, got bool"),
        (decimal.Decimal(2), 0, TypeError, "max_params must be an int, got Decimal"),
        (None, 0, TypeError, "max_params must be an int, got NoneType"),
        (0, 0, ValueError, "max_params must be at least 1, got 0"),
        (65536, 0, ValueError, "max_params must be at most 65535, got 65536"),
        (2**70, 0, ValueError, f"max_params must be at most 65535, got {2**70}"),
        (10, None, TypeError, "max_bytes must be an int, got NoneType"),
        (10, 100.0, TypeError, "max_bytes must be an int, got float"),
        (10, False, TypeError, "max_bytes must be an int, got bool"),
        (10, -1, ValueError, "max_bytes must be at least 0, got -1"),
        (10, _MAX_BYTES + 1, ValueError, f"max_bytes must be at most {_MAX_BYTES}, got {_MAX_BYTES + 1}"),
        (0.5, None, TypeError, "max_params must be an int, got float"),  # max_params first
    ],
)
def test_builders_check_limits(kernels, builder, max_params, max_bytes, exc_type, message):
    with pytest.raises(exc_type) as exc:
        _BUILDERS[builder](kernels, max_params, max_bytes)
    assert type(exc.value) is exc_type
    assert str(exc.value) == message


@pytest.mark.parametrize("builder", sorted(_BUILDERS))
def test_builders_take_the_bounds(kernels, builder):
    for max_params, max_bytes in [(1, 0), (65535, 0), (65535, _MAX_BYTES), (2, 1000)]:
        assert len(_BUILDERS[builder](kernels, max_params, max_bytes)) == 1


def test_limits_are_checked_before_names(kernels):
    with pytest.raises(TypeError, match="^max_params must be an int, got float$"):
        kernels.build_insert("mysql", "x`", [], [], 10.0)
    with pytest.raises(TypeError, match="^max_bytes must be an int, got NoneType$"):
        kernels.build_delete("mysql", "x`", [], [], 10, None)


def test_oversized_rows_report_a_capped_size(kernels):
    # Sizes come from len(), which a str subclass may fake: past 2**63 - 1
    # the estimate stops growing (the row is refused either way).
    class HugeText(str):
        def __len__(self):
            return 2**62

    with pytest.raises(ValueError) as exc:
        kernels.build_insert("mysql", "t", ["a", "b"], [(HugeText("x"), HugeText("y"))], 10, 1000)
    assert str(exc.value) == (f"a row needs about {2**63 - 1} bytes, "
                              "more than the 1000 one statement can carry")


@pytest.mark.parametrize(
    "max_bytes, exc_type, message",
    [
        (0, ValueError, "max_bytes must be at least 1, got 0"),
        (_MAX_BYTES + 1, ValueError, f"max_bytes must be at most {_MAX_BYTES}, got {_MAX_BYTES + 1}"),
        (None, TypeError, "max_bytes must be an int, got NoneType"),
        (True, TypeError, "max_bytes must be an int, got bool"),
        (1e6, TypeError, "max_bytes must be an int, got float"),
    ],
)
def test_build_literal_insert_checks_max_bytes(kernels, max_bytes, exc_type, message):
    with pytest.raises(exc_type) as exc:
        kernels.build_literal_insert("t", ["a"], [(1,)], repr, repr, "utf-8", True, max_bytes)
    assert str(exc.value) == message
    assert kernels.build_literal_insert("t", ["a"], [(1,)], repr, repr, "utf-8", True, _MAX_BYTES) == [
        b"INSERT INTO `t` (`a`) VALUES (1)"]


# -- build_delete ---------------------------------------------------------------


def test_build_delete_single_key(kernels):
    got = kernels.build_delete("postgresql", "t", ["id"], [(1,), (2,), (3,)], 2)
    assert got == [
        ('DELETE FROM "t" WHERE "id" IN (%s, %s)', [1, 2]),
        ('DELETE FROM "t" WHERE "id" IN (%s)', [3]),
    ]


def test_build_delete_composite_key(kernels):
    got = kernels.build_delete("mysql", "s.t", ["a", "b"], [(1, "x"), (2, "y"), (3, "z")], 5)
    assert got == [
        ("DELETE FROM `s`.`t` WHERE (`a`, `b`) IN ((%s, %s), (%s, %s))", [1, "x", 2, "y"]),
        ("DELETE FROM `s`.`t` WHERE (`a`, `b`) IN ((%s, %s))", [3, "z"]),
    ]


def test_build_delete_max_bytes(kernels):
    # Head plus the closing ")" is 33 bytes; a key costs len("%s") + 2 + 44.
    head = len("DELETE FROM `t` WHERE `id` IN (") + 1
    got = kernels.build_delete("mysql", "t", ["id"], [(1,), (2,), (3,)], 100, head + 2 * 48)
    assert got == [
        ("DELETE FROM `t` WHERE `id` IN (%s, %s)", [1, 2]),
        ("DELETE FROM `t` WHERE `id` IN (%s)", [3]),
    ]
    with pytest.raises(ValueError) as exc:
        kernels.build_delete("mysql", "t", ["id"], [(1,)], 100, head + 47)
    assert str(exc.value) == f"a row needs about {head + 48} bytes, more than the {head + 47} one statement can carry"


def test_build_delete_empty(kernels):
    assert kernels.build_delete("postgresql", "t", ["a", "b"], [], 10) == []


@pytest.mark.parametrize(
    "key_columns, keys, max_params, message",
    [
        ([], [(1,)], 10, "a delete by key needs at least one key column"),
        (["a", "b"], [(1, 2), (3,)], 10, "row 1 has 1 values, expected 2"),
        (["a", "b"], [(1, 2)], 1, "a row needs 2 parameters, more than the 1 one statement can carry"),
        (["a"], [(1,)], 0, "max_params must be at least 1, got 0"),
    ],
)
def test_build_delete_refuses(kernels, key_columns, keys, max_params, message):
    with pytest.raises(ValueError) as exc:
        kernels.build_delete("postgresql", "t", key_columns, keys, max_params)
    assert str(exc.value) == message


def test_build_delete_checks_columns_before_table(kernels):
    # The reverse of build_insert: key columns are quoted first.
    with pytest.raises(ValueError, match="^identifier 'y`' contains"):
        kernels.build_delete("mysql", "x`", ["y`"], [], 10)


# -- dollar_params --------------------------------------------------------------------


def test_dollar_params_numbers_placeholders_in_order(kernels):
    assert kernels.dollar_params("INSERT INTO t VALUES (%s, %s), (%s, %s)") == \
        "INSERT INTO t VALUES ($1, $2), ($3, $4)"


def test_dollar_params_unescapes_percent(kernels):
    # build_insert doubles a % in a name; "%%s" is a literal "%s", not a placeholder.
    assert kernels.dollar_params('INSERT INTO "a%%s" ("é%%") VALUES (%s)') == \
        'INSERT INTO "a%s" ("é%") VALUES ($1)'


def test_dollar_params_many_placeholders(kernels):
    statement = "VALUES " + ", ".join(["(%s, %s)"] * 40000)
    converted = kernels.dollar_params(statement)
    assert converted.endswith("($79999, $80000)") and "%" not in converted


@pytest.mark.parametrize("statement", ["a %d", "100%", "%x%s"])
def test_dollar_params_rejects_other_percent_codes(kernels, statement):
    with pytest.raises(ValueError, match="only %s and %% may follow a %"):
        kernels.dollar_params(statement)


def test_dollar_params_beyond_ascii(kernels):
    assert kernels.dollar_params('UPDATE "ĉ日" SET "é%%" = %s WHERE k = %s') == \
        'UPDATE "ĉ日" SET "é%" = $1 WHERE k = $2'
    statement = 'SELECT "日" WHERE a = %d'
    with pytest.raises(ValueError) as exc:
        kernels.dollar_params(statement)
    assert str(exc.value) == ("only %s and %% may follow a % in a built statement, "
                              f"found '%d' at {statement.index('%')}")


# -- socket_state ------------------------------------------------------------


def _tcp_pair():
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    return client, server


def test_socket_state(kernels):
    import socket
    import struct

    client, server = _tcp_pair()
    fd = client.fileno()
    assert kernels.socket_state(fd) == 0  # quiet
    server.sendall(b"E\x00\x00")
    deadline = time.monotonic() + 5
    while kernels.socket_state(fd) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert kernels.socket_state(fd) == 1 + ord("E")  # the first byte, left in place
    assert kernels.socket_state(fd) == 1 + ord("E")
    assert client.recv(3) == b"E\x00\x00"
    assert kernels.socket_state(fd) == 0
    assert client.getblocking()  # the descriptor's mode is untouched
    server.close()  # EOF
    while kernels.socket_state(fd) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert kernels.socket_state(fd) == -1
    client.close()

    client, server = _tcp_pair()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    server.close()  # a reset, not an orderly close
    fd = client.fileno()
    while kernels.socket_state(fd) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert kernels.socket_state(fd) == -1
    client.close()

    assert kernels.socket_state(-1) == 0  # unknown descriptor: nothing to tell
    with open(__file__, "rb") as f:  # not a socket
        assert kernels.socket_state(f.fileno()) == -1
