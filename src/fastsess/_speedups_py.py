"""Pure-Python twin of the compiled kernels in ``ext/fastsess/_speedups.pyx``.

Both modules expose the same names, take the same arguments and raise the
same exceptions with the same messages; ``tests/test_kernels_diff.py`` holds
them to that.  Only ``fastsess._impl`` should import either of them.
"""

from __future__ import annotations

__impl__ = "python"

# Dialect names the statement builders understand, with their identifier quote.
_QUOTES = {"postgresql": '"', "mysql": "`"}
# Longest identifier each server keeps (PostgreSQL NAMEDATALEN - 1 bytes,
# MySQL/MariaDB 64 characters); a longer one is silently truncated by
# PostgreSQL, so refuse it rather than address another object.
_MAX_IDENT = {"postgresql": 63, "mysql": 64}

# Bytes a statement spends per value on top of the literal itself: the
# separator and quotes or the placeholder's share (``%s, `` -> ``'...', ``).
_VALUE_OVERHEAD = 4
# Bytes assumed for a value that is not text or bytes (numbers, dates, UUIDs,
# Decimal): their literal forms stay well below this.
_SCALAR_LITERAL = 40


def row_to_dict(names, row):
    """One row (a sequence of values) as a dict keyed by column name.

    With duplicate names the last value wins, as ``dict(zip(names, row))``
    gives: the key keeps the position of its first occurrence.
    """
    if len(row) != len(names):
        raise ValueError(f"row has {len(row)} values, expected {len(names)}")
    return dict(zip(names, row))


def rows_to_dicts(names, rows):
    """A list of rows as a list of fresh dicts (see ``row_to_dict``)."""
    n = len(names)
    out = []
    append = out.append
    for row in rows:
        if len(row) != n:
            raise ValueError(f"row has {len(row)} values, expected {n}")
        append(dict(zip(names, row)))
    return out


def quote_identifier(dialect, name):
    """``name`` quoted as one identifier for ``dialect`` ("postgresql"/"mysql").

    Refuses (ValueError) what could not be quoted safely or would name another
    object: empty names, NUL, the dialect's quote character, over-long names.
    """
    quote = _QUOTES.get(dialect)
    if quote is None:
        raise ValueError(f"unknown dialect {dialect!r}, expected one of: mysql, postgresql")
    if not isinstance(name, str):
        raise TypeError(f"identifier must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError("identifier must not be empty")
    if "\x00" in name:
        raise ValueError(f"identifier {name!r} contains a NUL character")
    if quote in name:
        raise ValueError(f"identifier {name!r} contains the quote character {quote}")
    limit = _MAX_IDENT[dialect]
    size = len(name.encode("utf-8")) if dialect == "postgresql" else len(name)
    if size > limit:
        unit = "bytes" if dialect == "postgresql" else "characters"
        raise ValueError(f"identifier {name!r} is longer than {limit} {unit}")
    return quote + name + quote


def quote_table(dialect, table):
    """A table name, optionally schema-qualified as ``schema.table``, quoted."""
    if not isinstance(table, str):
        raise TypeError(f"table name must be a str, got {type(table).__name__}")
    return ".".join([quote_identifier(dialect, part) for part in table.split(".")])


def _literal_size(value):
    """A generous estimate of the bytes ``value`` takes as a MySQL literal."""
    if isinstance(value, str):
        # Worst case: 4 UTF-8 bytes per character, each escaped (x2 is not
        # needed for multi-byte characters, x4 covers both cases).
        return 4 * len(value) + _VALUE_OVERHEAD
    if isinstance(value, (bytes, bytearray, memoryview)):
        # Escaped binary can double; a hex literal doubles plus a prefix.
        return 2 * len(value) + 3 + _VALUE_OVERHEAD
    return _SCALAR_LITERAL + _VALUE_OVERHEAD


def _chunk_limits(width, max_params):
    """Rows one statement may carry given ``width`` bound values per row."""
    if max_params < 1:
        raise ValueError(f"max_params must be at least 1, got {max_params}")
    if width > max_params:
        raise ValueError(
            f"a row needs {width} parameters, more than the {max_params} one statement can carry"
        )
    return max_params // width


def _chunks(rows, width, max_params, max_bytes, head_size, row_text_size):
    """Split ``rows`` into lists of rows that each fit one statement.

    A chunk holds at most ``max_params // width`` rows and, when
    ``max_bytes`` is given (MySQL's ``max_allowed_packet``), at most as many
    rows as the estimated statement size allows.  Every row is checked for
    ``width`` values first, so a bad row fails before any chunk is returned.
    """
    per_chunk = _chunk_limits(width, max_params)
    rows = list(rows)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {i} has {len(row)} values, expected {width}")
    if not max_bytes:
        return [rows[i:i + per_chunk] for i in range(0, len(rows), per_chunk)]
    chunks = []
    current = []
    size = head_size
    for row in rows:
        row_size = row_text_size
        for value in row:
            row_size += _literal_size(value)
        if head_size + row_size > max_bytes:
            raise ValueError(
                f"a row needs about {head_size + row_size} bytes, "
                f"more than the {max_bytes} one statement can carry"
            )
        if current and (len(current) == per_chunk or size + row_size > max_bytes):
            chunks.append(current)
            current = []
            size = head_size
        current.append(row)
        size += row_size
    if current:
        chunks.append(current)
    return chunks


def build_insert(dialect, table, columns, rows, max_params, max_bytes=0):
    """Multi-row INSERT statements for ``rows`` (sequences in ``columns`` order).

    Returns a list of ``(statement, params)`` pairs, one per chunk, each
    statement a single ``INSERT INTO t (..) VALUES (..), (..)`` with ``%s``
    placeholders and ``params`` the flat list of values.  An empty ``rows``
    gives an empty list.
    """
    columns = list(columns)
    if not columns:
        raise ValueError("an insert needs at least one column")
    head = (
        "INSERT INTO "
        + quote_table(dialect, table)
        + " ("
        + ", ".join([quote_identifier(dialect, c) for c in columns])
        + ") VALUES "
    ).replace("%", "%%")  # statements run with parameters: a % in a name is literal
    width = len(columns)
    group = "(" + ", ".join(["%s"] * width) + ")"
    out = []
    for chunk in _chunks(rows, width, max_params, max_bytes, len(head), len(group) + 2):
        params = []
        for row in chunk:
            params.extend(row)
        out.append((head + ", ".join([group] * len(chunk)), params))
    return out


def build_delete(dialect, table, key_columns, keys, max_params, max_bytes=0):
    """Batch DELETE statements by primary key.

    ``keys`` holds one sequence of key values per row, in ``key_columns``
    order.  One key column gives ``DELETE FROM t WHERE k IN (%s, ..)``; a
    composite key gives ``WHERE (a, b) IN ((%s, %s), ..)``.  Returns a list of
    ``(statement, params)`` pairs; an empty ``keys`` gives an empty list.
    """
    key_columns = list(key_columns)
    if not key_columns:
        raise ValueError("a delete by key needs at least one key column")
    width = len(key_columns)
    quoted = [quote_identifier(dialect, c) for c in key_columns]
    if width == 1:
        head = "DELETE FROM " + quote_table(dialect, table) + " WHERE " + quoted[0] + " IN ("
        group = "%s"
    else:
        head = (
            "DELETE FROM "
            + quote_table(dialect, table)
            + " WHERE ("
            + ", ".join(quoted)
            + ") IN ("
        )
        group = "(" + ", ".join(["%s"] * width) + ")"
    head = head.replace("%", "%%")  # a % in a name is literal, as in build_insert
    out = []
    for chunk in _chunks(keys, width, max_params, max_bytes, len(head) + 1, len(group) + 2):
        params = []
        for key in chunk:
            params.extend(key)
        out.append((head + ", ".join([group] * len(chunk)) + ")", params))
    return out
