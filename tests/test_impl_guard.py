"""The kernels in use are the ones the environment asked for (no silent fallback)."""

from __future__ import annotations

import importlib
import os

import pytest


def _flag(name: str) -> bool:
    """An env switch read as fastsess._impl reads it ("", "0", "false", "no": unset)."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


REQUIRE = _flag("FASTSESS_REQUIRE_EXTENSION")
PURE = _flag("FASTSESS_PURE_PYTHON")


def _native_importable() -> bool:
    """True when fastsess._speedups can be imported in this environment."""
    try:
        importlib.import_module("fastsess._speedups")
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not REQUIRE, reason="FASTSESS_REQUIRE_EXTENSION is not set")
def test_extension_in_use_when_required():
    # Imported here, not at module level: with the extension missing,
    # fastsess._impl raises ImportError, and that is the failure to report.
    from fastsess import _impl

    assert _impl.__impl__ == "cython", f"fell back to the twin: {_impl.import_error}"
    assert _impl.import_error is None


@pytest.mark.skipif(not REQUIRE, reason="FASTSESS_REQUIRE_EXTENSION is not set")
def test_package_reports_extension_when_required():
    import fastsess

    if not hasattr(fastsess, "__impl__"):
        pytest.skip("fastsess does not re-export __impl__ (yet)")
    assert fastsess.__impl__ == "cython"


@pytest.mark.skipif(not PURE, reason="FASTSESS_PURE_PYTHON is not set")
def test_twin_in_use_when_pure_python():
    from fastsess import _impl

    assert _impl.__impl__ == "python"


@pytest.mark.skipif(PURE or REQUIRE, reason="an env switch chooses the kernels")
def test_extension_preferred_when_available():
    from fastsess import _impl

    if _native_importable():
        assert _impl.__impl__ == "cython"
    else:
        assert _impl.__impl__ == "python"
        assert _impl.import_error is not None
