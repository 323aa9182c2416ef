"""MySQL statements read the way mysql-connector reads them, for mysqlclient.

RESTAlchemy writes its MySQL statements for mysql-connector, which replaces
each ``%s`` (or ``%(name)s`` with a dict) with a parameter and leaves every
other ``%`` alone.  mysqlclient formats the statement with Python's ``%``
operator instead: ``%%`` becomes ``%`` and a lone ``%`` is an error.  And
mysql-connector substitutes nothing when the parameters are empty (``()``, as
RESTAlchemy's savepoint statements pass), where mysqlclient still formats.

``for_mysqlclient(statement, params)`` gives the statement and parameters
that make mysqlclient send what mysql-connector sends.
"""

from __future__ import annotations

import re

# mysql-connector's own pattern for a named placeholder.
_NAMED = re.compile(r"(%\([^)]+\)s)")


def for_mysqlclient(statement, params):
    """(statement, params) for mysqlclient's ``cursor.execute``."""
    if not params:
        # mysql-connector substitutes nothing for None, (), [] or {}.
        return statement, None
    if not isinstance(statement, str):
        return statement, params
    if isinstance(params, dict):
        if "%" not in _NAMED.sub("", statement):
            return statement, params
        parts = _NAMED.split(statement)
        # split() with a group: placeholders sit at the odd positions.
        parts[::2] = [part.replace("%", "%%") for part in parts[::2]]
        return "".join(parts), params
    # Each "%" that does not start a "%s" is literal; when the counts match
    # there is none (the common case, two cheap scans).
    if statement.count("%") == statement.count("%s"):
        return statement, params
    return "%s".join([part.replace("%", "%%") for part in statement.split("%s")]), params
