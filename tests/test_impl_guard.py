"""The kernels in use are the ones the environment asked for (no silent fallback)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import types

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


# What fastsess._impl defines besides the kernels it re-exports.
_IMPL_OWN = {"PURE_PYTHON", "REQUIRE_EXTENSION", "import_error", "TYPE_CHECKING", "annotations",
             "COMPILED_MODULES", "compiled_modules", "check_compiled"}


@pytest.mark.skipif(PURE or not _native_importable(), reason="the compiled kernels are not in use")
def test_impl_exports_only_compiled_kernels():
    # With the compiled module chosen, every public kernel name of _impl is
    # that module's own object: none is borrowed from the twin.
    from fastsess import _impl, _kernels_common, _speedups, _speedups_py

    assert _impl.__impl__ == "cython"
    kernels = {name: value for name, value in vars(_impl).items()
               if not name.startswith("_") and name not in _IMPL_OWN
               and not isinstance(value, types.ModuleType)}
    assert {"statement_kind", "dollar_params", "build_upsert", "QueryCacheCore"} <= set(kernels)
    for name, value in kernels.items():
        assert value is getattr(_speedups, name, None), f"_impl.{name} is not the compiled module's"
        shared = value is getattr(_kernels_common, name, object())  # a constant of both
        assert shared or value is not getattr(_speedups_py, name, None), f"_impl.{name} is the twin's"
        if callable(value):
            assert value.__module__ == "fastsess._speedups", f"_impl.{name} comes from {value.__module__}"


@pytest.mark.skipif(PURE or not _native_importable(), reason="the compiled kernels are not in use")
def test_compiled_module_never_uses_the_twin():
    native = importlib.import_module("fastsess._speedups")
    for name, value in vars(native).items():
        assert getattr(value, "__name__", None) != "fastsess._speedups_py", name
        assert getattr(value, "__module__", None) != "fastsess._speedups_py", name
    # C-level globals are not in vars(): import the module afresh where the
    # twin cannot be imported at all.
    env = {k: v for k, v in os.environ.items() if k != "FASTSESS_PURE_PYTHON"}
    env["FASTSESS_REQUIRE_EXTENSION"] = "1"
    code = ("import sys; sys.modules['fastsess._speedups_py'] = None; "
            "import fastsess._speedups as k; assert k.build_insert('mysql', 't', ['a'], [(1,)], 1)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- the session core compiled from its own source (setup.py, _impl.COMPILED_MODULES)

_CORE = ("atomic", "batch", "current", "engine", "pool", "pool_async", "result", "scopes", "session",
         "session_async")


@pytest.mark.skipif(not REQUIRE, reason="FASTSESS_REQUIRE_EXTENSION is not set")
def test_session_core_compiled_when_required():
    from fastsess import _impl, pool, session

    assert _impl.compiled_modules() == list(_impl.COMPILED_MODULES)
    assert not session.__file__.endswith(".py")
    # The classes are extension types: their fields are C slots, not a dict.
    assert not hasattr(session.Session, "__dictoffset__") or session.Session.__dictoffset__ == 0
    assert type(pool.PooledConnection.__dict__["broken"]).__name__ == "getset_descriptor"


@pytest.mark.skipif(not PURE, reason="FASTSESS_PURE_PYTHON is not set")
def test_session_core_from_source_when_pure():
    from fastsess import _impl, session

    assert _impl.compiled_modules() == []
    for name in _impl.COMPILED_MODULES:
        module = sys.modules[f"fastsess.{name}"]
        assert module.__file__.endswith(f"{name}.py"), module.__file__


def test_setup_compiles_the_modules_impl_lists():
    # setup.py cannot import fastsess; the two lists must agree.
    import ast
    from pathlib import Path

    from fastsess import _impl

    tree = ast.parse((Path(__file__).parents[1] / "setup.py").read_text())
    listed = [ast.literal_eval(node.value) for node in ast.walk(tree)
              if isinstance(node, ast.Assign)
              and any(getattr(t, "id", None) == "COMPILED_MODULES" for t in node.targets)]
    assert listed == [_impl.COMPILED_MODULES] == [_CORE]


def test_pure_switch_loads_every_core_module_from_source():
    # In a fresh interpreter, whatever this one runs: the twin's switch
    # reaches the compiled session core too, and the two load the same API.
    code = ("import fastsess, json, sys; from fastsess import _impl; "
            "print(json.dumps([_impl.__impl__, _impl.compiled_modules(), "
            "sorted(n for n, v in vars(sys.modules['fastsess.session']).items() "
            "if getattr(v, '__module__', None) == 'fastsess.session' "
            "and not n.startswith('__pyx'))]))")
    env = {k: v for k, v in os.environ.items() if k != "FASTSESS_REQUIRE_EXTENSION"}
    env["FASTSESS_PURE_PYTHON"] = "1"
    pure = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert pure.returncode == 0, pure.stderr
    impl, compiled, names = json.loads(pure.stdout)
    assert (impl, compiled) == ("python", [])
    if _native_importable():
        env.pop("FASTSESS_PURE_PYTHON")
        native = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                text=True)
        assert native.returncode == 0, native.stderr
        impl, compiled, native_names = json.loads(native.stdout)
        assert (impl, compiled) == ("cython", list(_CORE))
        assert native_names == names
