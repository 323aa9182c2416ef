"""Chooses, once, between the compiled kernels and their pure-Python twin.

``FASTSESS_PURE_PYTHON=1`` selects the twin.  ``FASTSESS_REQUIRE_EXTENSION=1``
makes a missing or broken extension an ImportError instead of a fallback.
Every name below is the chosen module's own object (what the two share lives
in ``fastsess._kernels_common``; neither imports the other).  Everything else
in fastsess imports kernels from here, never directly.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import TYPE_CHECKING

#: Modules of the session core that the build also compiles from their own
#: source (Cython's pure-Python mode, typed by the .pxd beside each; see
#: setup.py): their compiled build is used with the compiled kernels, their
#: source with the twin.
COMPILED_MODULES = ("atomic", "batch", "current", "engine", "pool", "pool_async", "result",
                    "scopes", "session", "session_async")


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
column_labels = _k.column_labels
decoded_names = _k.decoded_names
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


class _SourceFinder:
    """Loads the ``COMPILED_MODULES`` from their .py source, past a compiled
    build of them beside it, when the twin is in use."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != __package__ or name not in COMPILED_MODULES:
            return None
        source = os.path.join(os.path.dirname(__file__), name + ".py")
        return importlib.util.spec_from_file_location(fullname, source)


if __impl__ == "python" and _SourceFinder not in sys.meta_path:
    sys.meta_path.insert(0, _SourceFinder)


def compiled_modules() -> list:
    """The ``COMPILED_MODULES`` imported from a compiled build."""
    out = []
    for name in COMPILED_MODULES:
        module = sys.modules.get(f"{__package__}.{name}")
        if module is not None and not module.__file__.endswith(".py"):
            out.append(name)
    return out


def check_compiled() -> None:
    """With ``FASTSESS_REQUIRE_EXTENSION``: ImportError unless every one of
    the ``COMPILED_MODULES`` (imported by now) came from the build."""
    if REQUIRE_EXTENSION:
        missing = sorted(set(COMPILED_MODULES) - set(compiled_modules()))
        if missing:
            raise ImportError("FASTSESS_REQUIRE_EXTENSION is set but these modules were not "
                              f"compiled: {', '.join(missing)}")
