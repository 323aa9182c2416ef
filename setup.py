"""Build of the compiled kernels; all metadata is in pyproject.toml.

FASTSESS_PURE_PYTHON=1 skips the extension (a py3-none-any wheel; the twin
``fastsess._speedups_py`` is used).  FASTSESS_REQUIRE_EXTENSION=1 makes a
failed compile fail the build instead of installing without the extension.
The same two variables are read again at import by ``fastsess._impl``.
"""

import os
import sys

from setuptools import Extension, setup


def _flag(name):
    # Same reading as fastsess._impl: "", "0", "false", "no" mean unset.
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


#: Modules of src/fastsess compiled as they are (keep in step with
#: fastsess._impl.COMPILED_MODULES).
COMPILED_MODULES = ("atomic", "batch", "current", "engine", "pool", "pool_async", "result",
                    "scopes", "session", "session_async")

PURE = _flag("FASTSESS_PURE_PYTHON") or sys.implementation.name != "cpython"
REQUIRE = _flag("FASTSESS_REQUIRE_EXTENSION")

ext_modules = []
cmdclass = {}
if PURE:
    if REQUIRE:
        raise RuntimeError(
            "FASTSESS_REQUIRE_EXTENSION is set, but the extension is skipped: "
            + ("FASTSESS_PURE_PYTHON is set" if _flag("FASTSESS_PURE_PYTHON")
               else f"{sys.implementation.name} is not CPython")
        )
else:
    # Cython's build_ext as the command rather than cythonize(): it keeps
    # Extension(optional=...) as given.
    from Cython.Build import build_ext

    if sys.platform == "win32":
        extra_compile_args = []
    else:
        # Cython emits many helpers a module does not use.
        extra_compile_args = ["-O2", "-Wall", "-Wno-unused-function"]
    ext_modules = [
        Extension(
            "fastsess._speedups",
            ["ext/fastsess/_speedups.pyx"],
            include_dirs=["ext"],
            extra_compile_args=extra_compile_args,
            optional=not REQUIRE,
        )
    ]
    # The session core, compiled from its own Python source (Cython's
    # pure-Python mode; each module's .pxd declares its classes as extension
    # types), so the compiled and the pure implementation are one text.
    for name in COMPILED_MODULES:
        ext = Extension(
            f"fastsess.{name}",
            [f"src/fastsess/{name}.py"],
            include_dirs=["src"],
            extra_compile_args=extra_compile_args,
            optional=not REQUIRE,
        )
        # The .py files' annotations are documentation, not C types.
        ext.cython_directives = {"language_level": "3", "annotation_typing": False,
                                "auto_pickle": False}
        ext_modules.append(ext)
    cmdclass = {"build_ext": build_ext}

setup(ext_modules=ext_modules, cmdclass=cmdclass)
