"""The distribution ships every Python package of the source tree (an editable install would hide a
missing one), and the build without CUDA compiles (CI builds the CUDA kernels, so nothing else
compiles the stubs that replace them)."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_setup_lists_every_subpackage():
    tree = ast.parse((ROOT / "setup.py").read_text())
    listed = next(ast.literal_eval(kw.value) for node in ast.walk(tree) if isinstance(node, ast.Call)
                  for kw in node.keywords if kw.arg == "packages")
    found = {".".join(("pygan",) + p.parent.relative_to(ROOT / "pygan").parts)
             for p in (ROOT / "pygan").rglob("__init__.py")}
    assert found | {"pygan.triton_kernels"} == set(listed)


def test_cuda_stubs_match_their_declarations():
    """csrc/cuda/no_cuda.cpp replaces the .cu files in a build without nvcc. A stub whose signature
    drifted from its header's would be an overload, and pygan._C an undefined symbol at import:
    CMake builds the file with -Werror=missing-declarations, and so does this check."""
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    run = subprocess.run([cxx, "-std=c++17", "-fsyntax-only", "-Werror=missing-declarations", f"-I{ROOT / 'csrc'}",
                          str(ROOT / "csrc" / "cuda" / "no_cuda.cpp")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_compile_choice_stays_in_the_op_layer():
    """Each op's call (pygan/_ops) picks the registered op under torch.compile or the eager path
    elsewhere; the public modules call it and never branch on compilation themselves."""
    offenders = []
    for path in sorted((ROOT / "pygan").rglob("*.py")):
        if "_ops" in path.relative_to(ROOT / "pygan").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "is_compiling":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
