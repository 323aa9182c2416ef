"""Which PostgreSQL result types psycopg loads to the same value in binary as in text.

libpq asks for one result format per statement, so binary results are only
safe for a statement when *every* result column is of a type listed here:
its default binary loader gives what its default text loader gives (same
type, value, repr, tzinfo), under the connection's settings.  The proof is
``tests/test_pg_binary_equality.py``, which fetches each type both ways on
the real server and fails if this table claims a type that differs or
excludes one without a measured difference.  IO-free: the caller passes the
settings (``settings_of`` reads the ones the server reports).

Exact under any setting: bool, int2, int4, int8, oid, numeric (scales, NaN,
+-Infinity, 1000-digit values), text, varchar, bpchar, name, bytea (hex or
escape output), date, time, timetz, timestamp (every DateStyle psycopg
parses; infinity, BC and year 10000 raise DataError both ways), uuid,
json, jsonb, inet, cidr, the built-in ranges and multiranges of exact
types, and arrays of exact types (2-D, NULL elements, empty, lower bounds
other than 1).  Domains count as their base type: the server describes a
domain column by its base type's OID.

Exact under a condition:

- float8: ``extra_float_digits >= 1`` (the default since PostgreSQL 12:
  shortest exact text).  With 0 or less the text is rounded: 0.1 + 0.2
  reads 0.3 in text, 0.30000000000000004 in binary.
- bytea[]: ``bytea_output = hex``.  With ``escape`` psycopg's C text array
  loader reads past an unquoted or empty element: ``ARRAY['']::bytea[]``
  gives ``[b'"}']`` in text, ``[b'']`` in binary.
- timestamptz (and its arrays, tstzrange, tstzmultirange): DateStyle ISO
  (the text loader refuses the other styles: NotImplementedError) and a
  TimeZone that passes ``_zone_exact``.  Both loaders return the
  connection's ZoneInfo for ordinary instants, but where local time is
  inside Python's range and UTC is not, text returns a fixed-offset
  ``timezone`` and binary the ZoneInfo (Europe/Paris at year 1,
  America/New_York at 9999-12-31 23:00-05); a zone psycopg cannot load
  ('+05:30') it reads as UTC, so one loader raises where the other returns.

The server does not report ``extra_float_digits`` or ``bytea_output``: the
caller reads them (SHOW) and again after a SET, or they count as unmet.

Never exact (the measured difference):

- float4 (``real``): text is the shortest decimal of the 32-bit value,
  binary the 32-bit value widened: 1.1 against 1.100000023841858.
- interval (and its arrays): psycopg's C binary loader negates into
  overflow at the extremes, -2**31 months and -2**63 microseconds
  (``'-178956970 years -8 mons'`` loads as +894784490 days); and with an
  IntervalStyle other than ``postgres`` the text loader refuses everything.
  (psycopg's Python implementation agrees at the extremes; fastsess runs
  the C one.)
- ``"char"``: PostgreSQL 15 writes a non-ASCII byte as an octal escape
  (``'\\303'``) in text and sends the raw byte in binary (a
  UnicodeDecodeError); ``''::"char"`` is ``''`` in text, ``'\\x00'`` in binary.
- record (``ROW(...)``): text gives a tuple of strings, binary a tuple of
  typed values.
- every type without a psycopg loader (money, xml, point, macaddr, bit,
  tsvector, regclass, pg_lsn, xid, void, ...) and every user type (enums,
  composites, arrays of domains, extension types): text gives ``str``,
  binary ``bytes``.

The table is for psycopg's default loaders.  A connection with other
loaders registered for these OIDs needs its own proof, except a JSON
``loads`` set with ``set_json_loads`` on the connection, which psycopg
installs for both formats alike.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime, timedelta
from typing import Iterable, Mapping

# Reported by the server (ParameterStatus), so libpq always knows them.
REPORTED = ("DateStyle", "TimeZone")
# Not reported: the caller reads them with SHOW (and again after a SET).
UNREPORTED = ("extra_float_digits", "bytea_output")

# Conditions a type needs from the settings (None: no condition).
_FLOAT8 = "float8"
_TIMESTAMPTZ = "timestamptz"
_BYTEA_HEX = "bytea_hex"

# OID -> condition, for the scalar types.
_SCALARS: dict[int, str | None] = {
    16: None,    # bool
    17: None,    # bytea
    19: None,    # name
    20: None,    # int8
    21: None,    # int2
    23: None,    # int4
    25: None,    # text
    26: None,    # oid
    114: None,   # json
    650: None,   # cidr
    869: None,   # inet
    1042: None,  # bpchar
    1043: None,  # varchar
    1082: None,  # date
    1083: None,  # time
    1114: None,  # timestamp
    1266: None,  # timetz
    1700: None,  # numeric
    2950: None,  # uuid
    3802: None,  # jsonb
    701: _FLOAT8,
    1184: _TIMESTAMPTZ,
}

# Ranges and multiranges -> their element type; they are exact when it is.
_RANGES = {
    3904: 23, 4451: 23,      # int4range, int4multirange
    3926: 20, 4536: 20,      # int8range, int8multirange
    3906: 1700, 4532: 1700,  # numrange, nummultirange
    3912: 1082, 4535: 1082,  # daterange, datemultirange
    3908: 1114, 4533: 1114,  # tsrange, tsmultirange
    3910: 1184, 4534: 1184,  # tstzrange, tstzmultirange
}

# Array type OID -> element type OID (psycopg loads each array with its
# element's loader, so an array is exact when its element is).
_ARRAYS = {
    1000: 16, 1001: 17, 1003: 19, 1016: 20, 1005: 21, 1007: 23, 1009: 25, 1028: 26,
    199: 114, 651: 650, 1041: 869, 1014: 1042, 1015: 1043, 1182: 1082, 1183: 1083,
    1115: 1114, 1270: 1266, 1231: 1700, 2951: 2950, 3807: 3802, 1022: 701,
    1185: 1184,
    3905: 3904, 6150: 4451, 3927: 3926, 6157: 4536, 3907: 3906, 6151: 4532,
    3913: 3912, 6155: 4535, 3909: 3908, 6152: 4533, 3911: 3910, 6153: 4534,
}
# Arrays that need more than their element does.
_ARRAY_CONDITIONS = {1001: _BYTEA_HEX}


@functools.lru_cache(maxsize=None)
def _zone_exact(name: str) -> bool:
    """Whether timestamptz loads alike in time zone ``name``: psycopg must
    know the zone (it reads an unknown one as UTC, the server does not), and
    no instant may be inside Python's range in local time but outside it in
    UTC: an offset <= 0 at year 1 and >= 0 at year 9999 (UTC, London,
    Lisbon, Kiritimati; not Paris, New York, Kolkata)."""
    if name == "UTC":
        return True  # psycopg: timezone.utc
    try:
        zone = zoneinfo.ZoneInfo(name)
    except Exception:  # psycopg reads a zone it cannot load as UTC
        return False
    return zone.utcoffset(datetime.min) <= timedelta(0) <= zone.utcoffset(datetime.max)


def settings_of(pgconn, **unreported: object) -> dict[str, str]:
    """The settings ``binary_exact`` needs: the reported ones from ``pgconn``
    (no round trip), the others (``UNREPORTED``) as given."""
    settings = {}
    for name in REPORTED:
        value = pgconn.parameter_status(name.encode())
        if value is not None:
            settings[name] = value.decode()
    settings.update((k, str(v)) for k, v in unreported.items())
    return settings


def _holds(condition: str | None, settings: Mapping[str, str]) -> bool:
    """Whether ``settings`` meet a type's condition (a missing setting: no)."""
    if condition is None:
        return True
    if condition == _FLOAT8:
        try:
            return int(settings["extra_float_digits"]) >= 1
        except (KeyError, ValueError):
            return False
    if condition == _TIMESTAMPTZ:
        return settings.get("DateStyle", "").startswith("ISO") and _zone_exact(settings.get("TimeZone", ""))
    if condition == _BYTEA_HEX:
        return settings.get("bytea_output") == "hex"
    raise ValueError(f"unknown condition {condition!r}")


def oid_exact(oid: int, settings: Mapping[str, str]) -> bool:
    """Whether psycopg loads a column of type ``oid`` identically in binary and text."""
    if oid in _ARRAYS:
        if not _holds(_ARRAY_CONDITIONS.get(oid), settings):
            return False
        oid = _ARRAYS[oid]
    oid = _RANGES.get(oid, oid)
    return oid in _SCALARS and _holds(_SCALARS[oid], settings)


def binary_exact(oids: Iterable[int], settings: Mapping[str, str]) -> bool:
    """Whether a statement whose result columns have types ``oids`` may be
    fetched in binary: every column exact (a statement without columns: yes)."""
    return all(oid_exact(oid, settings) for oid in oids)
