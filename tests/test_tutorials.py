"""Tutorials run end to end in fast mode, and the README example runs as written."""

import pathlib
import re
import runpy

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("*.py"))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_in_fast_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("PPL_FAST", "1")
    monkeypatch.setenv("PPL_OUTPUT_DIR", str(tmp_path))
    runpy.run_path(str(path), run_name="__main__")
    assert any(tmp_path.iterdir()), "the tutorial should write its figure"


def test_readme_example_runs_as_written(capsys):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks, "README has no python example"
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out.split()
    assert len(printed) >= 4  # the bound, the evidence, the ESS and the posterior mean
