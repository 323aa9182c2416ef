"""Chooses, once, between the compiled kernels and their pure-Python twin.

``FASTSESS_PURE_PYTHON=1`` selects the twin.  ``FASTSESS_REQUIRE_EXTENSION=1``
makes a missing or broken extension an ImportError instead of a fallback.
Every name below is the chosen module's own object (what the two share lives
in ``fastsess._kernels_common``; neither imports the other).  Everything else
in fastsess imports kernels from here, never directly.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


PURE_PYTHON = _flag("FASTSESS_PURE_PYTHON")
REQUIRE_EXTENSION = _flag("FASTSESS_REQUIRE_EXTENSION")

#: Why the compiled kernels are not in use (None when they are, or when the
#: twin was asked for explicitly).
import_error: ImportError | None = None

if TYPE_CHECKING or PURE_PYTHON:
    if REQUIRE_EXTENSION and not TYPE_CHECKING:
        raise ImportError(
            "FASTSESS_REQUIRE_EXTENSION and FASTSESS_PURE_PYTHON are both set; unset one"
        )
    from . import _speedups_py as _k
else:
    try:
        from . import _speedups as _k  # type: ignore[no-redef]
    except ImportError as e:
        if REQUIRE_EXTENSION:
            raise ImportError(
                f"FASTSESS_REQUIRE_EXTENSION is set but fastsess._speedups could not be imported: {e}"
            ) from e
        from . import _speedups_py as _k  # type: ignore[no-redef]

        import_error = e

__impl__: str = _k.__impl__  # "cython" | "python"

row_to_dict = _k.row_to_dict
rows_to_dicts = _k.rows_to_dicts
quote_identifier = _k.quote_identifier
quote_table = _k.quote_table
build_insert = _k.build_insert
build_upsert = _k.build_upsert
build_delete = _k.build_delete
build_literal_insert = _k.build_literal_insert
dollar_params = _k.dollar_params
encode_key = _k.encode_key
cache_key = _k.cache_key
cache_get = _k.cache_get
QueryCacheCore = _k.QueryCacheCore
LOCKING_READ = _k.LOCKING_READ
statement_kind = _k.statement_kind
socket_state = _k.socket_state
