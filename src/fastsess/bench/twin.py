"""fastsess on its pure-Python twin, loaded beside the compiled kernels in the same process.

fastsess picks its kernels once, at import (``fastsess._impl``), and the core
binds them as it loads: module globals (``result._rows_to_dicts``), base
classes (``cache.SessionQueryCache`` derives from the kernel's
``QueryCacheCore``).  Rebinding those afterwards cannot reach a base class,
so ``twin_package()`` does not patch fastsess: it imports a second copy of
the package from the same files, under the name ``_fastsess_bench_twin``,
with ``FASTSESS_PURE_PYTHON=1`` set for that import -- exactly what a process
started with that variable runs -- and leaves the ``fastsess`` modules the
other stacks use untouched.  The copy has its own classes (engines, pools,
sessions, errors); nothing of it is handed to the other stacks.
"""

from __future__ import annotations

import importlib.util
import os
import sys

TWIN_PACKAGE = "_fastsess_bench_twin"
_ENV = ("FASTSESS_PURE_PYTHON", "FASTSESS_REQUIRE_EXTENSION")


def native_missing_reason() -> str:
    """Why fastsess does not run on the compiled kernels here (empty when it does)."""
    from .. import _impl

    if _impl.__impl__ == "cython":
        return ""
    if _impl.PURE_PYTHON:
        return "FASTSESS_PURE_PYTHON is set: this process runs the pure-Python twin only"
    return f"the compiled kernels are not importable ({_impl.import_error})"


def twin_package():
    """The fastsess package running on its pure-Python kernels: ``fastsess``
    itself when this process runs the twin already, else the copy described
    in the module docstring (imported once)."""
    import fastsess

    if fastsess.__impl__ == "python":
        return fastsess
    package = sys.modules.get(TWIN_PACKAGE)
    if package is not None:
        return package
    spec = importlib.util.spec_from_file_location(
        TWIN_PACKAGE, fastsess.__file__, submodule_search_locations=list(fastsess.__path__))
    package = importlib.util.module_from_spec(spec)
    saved = {name: os.environ.pop(name, None) for name in _ENV}
    os.environ["FASTSESS_PURE_PYTHON"] = "1"
    sys.modules[TWIN_PACKAGE] = package
    try:
        # The package imports _impl (which reads the variable) while it loads;
        # the modules it imports later find _impl already chosen.
        spec.loader.exec_module(package)
    except BaseException:
        for name in [m for m in sys.modules if m == TWIN_PACKAGE or m.startswith(TWIN_PACKAGE + ".")]:
            del sys.modules[name]
        raise
    finally:
        os.environ.pop("FASTSESS_PURE_PYTHON", None)
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value
    if package.__impl__ != "python":  # pragma: no cover - _impl's contract
        raise RuntimeError(f"the twin copy of fastsess loaded {package.__impl__!r} kernels")
    return package
