"""Shared fixtures for the benchmarks: the kernel implementations side by side, the servers, and
the size of the end-to-end scenarios.

``pytest benchmarks`` times everything at full size.  Under ``--benchmark-disable``
(what ``scripts/test.sh`` runs, as a smoke test) each benchmark runs once, and
the end-to-end scenarios use ``fastsess bench --quick``'s small sizes.
"""

from __future__ import annotations

import importlib
import os

import pytest

import fastsess._speedups_py as twin

PG_URL = os.environ.get("FASTSESS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("FASTSESS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
URLS = {"postgresql": PG_URL, "mysql": MYSQL_URL}


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


@pytest.fixture(scope="session")
def server_urls() -> dict:
    """dialect -> URL of the server the database benchmarks use."""
    return dict(URLS)


@pytest.fixture(scope="session")
def smoke(request) -> bool:
    """True under --benchmark-disable: each benchmark runs once, at the quick sizes."""
    return bool(request.config.getoption("benchmark_disable", False))
