"""Every Python block of the README runs as written (each in a fresh namespace, in a scratch
folder): the examples are the documentation users copy, so they must not rot."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
# The two blocks that train for the README's step counts (3,000 steps each) take a minute or two.
SLOW = ("gan.fit(data, 3000", "bigan.fit(train, 3000")


def _params():
    for i, code in enumerate(BLOCKS):
        first = next(line for line in code.splitlines() if line.strip() and not line.startswith(("import", "from")))
        marks = [pytest.mark.slow] if any(s in code for s in SLOW) else []
        yield pytest.param(code, id=f"block{i + 1}-{first.split('=')[0].strip()[:20]}", marks=marks)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("code", list(_params()))
def test_readme_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
