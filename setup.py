"""Builds pygan._C with CMake (see CMakeLists.txt); metadata lives in pyproject.toml.

The CMake build folder is build/<extension>-<python tag>/ in the source tree and outlives the
install, so a repeated ``pip install -e .`` (or ``cmake --build`` in that folder, which
scripts/setup.sh runs when nothing but sources changed) recompiles only what changed.

Environment:
  PYGAN_CUDA=0            skip the CUDA kernels even when nvcc is found
  PYGAN_CUDA_ARCHS=90     CUDA architectures (CMake syntax), default "80-real;90-real;90-virtual"
  PYGAN_BUILD_JOBS=N      parallel compile jobs (default: all cores)
  PYGAN_AUTOGRAD=0        skip pygan._autograd, the C++ autograd nodes (the ops then record
                          Python nodes)
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        import pybind11

        if ext.name == "pygan._autograd":  # built by pygan._C's CMake run, which comes first
            self._copy_module(ext.name)
            return

        cmake = shutil.which("cmake")
        if cmake is None:
            raise RuntimeError("pygan needs CMake >= 3.18 to build its kernels: install cmake")
        build_dir = _build_dir()
        build_dir.mkdir(parents=True, exist_ok=True)
        # CMake writes the module into the build folder (a stable path, so that scripts/setup.sh can
        # rebuild it with `cmake --build` alone) and it is copied to where setuptools wants it.
        lib_dir = build_dir / "lib"
        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={lib_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            "-DCMAKE_BUILD_TYPE=Release",
        ]
        # Every setting is passed on each configure: the build folder's CMake cache would otherwise
        # keep the values of an earlier build.
        cuda = os.environ.get("PYGAN_CUDA", "1").lower() not in ("0", "off", "false", "no")
        args.append(f"-DPYGAN_CUDA={'ON' if cuda else 'OFF'}")
        archs = os.environ.get("PYGAN_CUDA_ARCHS", "80-real;90-real;90-virtual")
        args.append(f"-DCMAKE_CUDA_ARCHITECTURES={archs}")
        args += _torch_args()
        jobs = os.environ.get("PYGAN_BUILD_JOBS", str(os.cpu_count() or 1))
        subprocess.run([cmake, str(ROOT), *args], cwd=build_dir, check=True)
        subprocess.run([cmake, "--build", ".", "--parallel", jobs], cwd=build_dir, check=True)
        self._copy_module(ext.name)

    def _copy_module(self, name: str) -> None:
        """Copies the module CMake wrote into its build folder to where setuptools wants it."""
        lib_dir = _build_dir() / "lib"
        out_dir = Path(self.get_ext_fullpath(name)).resolve().parent
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib_dir / Path(self.get_ext_filename(name)).name, out_dir)


def _build_dir() -> Path:
    # Not build_temp: pip's editable builds put that in a fresh temporary folder every time.
    return ROOT / "build" / f"pygan._C-{sys.implementation.cache_tag}"


def _torch_dir():
    """The installed torch's package folder when it ships its C++ headers (pygan._autograd compiles
    against them), else None: then the module is not built and the ops record Python nodes. Also
    None with PYGAN_AUTOGRAD=0 (a torch whose C++ API the nodes do not compile against)."""
    if os.environ.get("PYGAN_AUTOGRAD", "1").lower() in ("0", "off", "false", "no"):
        return None
    try:
        import torch
    except ImportError:
        return None
    path = Path(torch.__file__).resolve().parent
    return path if (path / "include" / "torch" / "csrc" / "autograd" / "node.h").exists() else None


def _torch_args() -> list:
    """CMake settings for pygan._autograd: the torch to compile against, its C++ ABI and version."""
    path = _torch_dir()
    if path is None:
        return ["-DPYGAN_TORCH_DIR="]
    import torch

    return [f"-DPYGAN_TORCH_DIR={path}",
            f"-DPYGAN_TORCH_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
            f"-DPYGAN_TORCH_VERSION={torch.__version__}"]


setup(
    ext_modules=[CMakeExtension("pygan._C")] + ([CMakeExtension("pygan._autograd")] if _torch_dir() else []),
    cmdclass={"build_ext": CMakeBuild},
    # The Triton kernels live in the top-level triton_kernels/ folder but install inside pygan, so
    # they never clash with other distributions' top-level `triton_kernels` package.
    packages=["pygan", "pygan._ops", "pygan.metrics", "pygan.triton_kernels"],
    package_dir={"pygan": "pygan", "pygan.triton_kernels": "triton_kernels"},
)
