"""Shared fixtures for the benchmarks: the kernel implementations side by side."""

from __future__ import annotations

import importlib
import os

import pytest

import fastsess._speedups_py as twin


def _native():
    """fastsess._speedups, or the reason it is not benchmarked."""
    if os.environ.get("FASTSESS_PURE_PYTHON", "").strip().lower() not in ("", "0", "false", "no"):
        return None, "FASTSESS_PURE_PYTHON is set"
    try:
        return importlib.import_module("fastsess._speedups"), None
    except ImportError as e:
        return None, f"fastsess._speedups is not importable: {e}"


native, native_missing = _native()


@pytest.fixture(
    params=[
        pytest.param("cython", marks=pytest.mark.skipif(native is None, reason=str(native_missing))),
        "python",
    ]
)
def kernels(request):
    """The kernel module to time: fastsess._speedups (id cython) or its twin (id python)."""
    return native if request.param == "cython" else twin
