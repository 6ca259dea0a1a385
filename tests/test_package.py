"""The distribution ships every Python package of the source tree (an editable install would hide a
missing one)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_setup_lists_every_subpackage():
    tree = ast.parse((ROOT / "setup.py").read_text())
    listed = next(ast.literal_eval(kw.value) for node in ast.walk(tree) if isinstance(node, ast.Call)
                  for kw in node.keywords if kw.arg == "packages")
    found = {".".join(("pygan",) + p.parent.relative_to(ROOT / "pygan").parts)
             for p in (ROOT / "pygan").rglob("__init__.py")}
    assert found | {"pygan.triton_kernels"} == set(listed)
