"""The tutorials (jupytext percent scripts in ``tutorials/``) as documentation pages: each
markdown cell as text, each code cell as a code block followed by what it printed, run in
fast mode (``PPL_FAST=1``) with the figures it saved shown at the end.

Run by ``docs/conf.py`` at the start of every build, so the pages show what the code does
today; a tutorial that fails fails the build.

    >>> cells = split_cells("# %% [markdown]\\n# # Title\\n# text\\n\\n# %%\\nprint(1)\\n")
    >>> [(kind, body) for kind, body in cells]
    [('markdown', '# Title\\ntext'), ('code', 'print(1)')]
"""

import contextlib
import io
import os
import pathlib
import re
import shutil

ROOT = pathlib.Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^# %%(?P<markdown> \[markdown\])?.*$", re.MULTILINE)


def split_cells(text):
    """[(kind, body)]: the cells after the jupytext header, ``kind`` "markdown" or "code"."""
    cells = []
    marks = list(MARKER.finditer(text))
    for mark, following in zip(marks, marks[1:] + [None]):
        body = text[mark.end():following.start() if following else len(text)].strip("\n")
        if mark.group("markdown"):
            lines = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines()]
            cells.append(("markdown", "\n".join(lines).strip()))
        elif body.strip():
            cells.append(("code", body.rstrip()))
    return cells


def render(path, out_dir):
    """Run one tutorial cell by cell and write its page (``<stem>.md``) and figures."""
    figures = out_dir / f"{path.stem}_figures"
    shutil.rmtree(figures, ignore_errors=True)
    figures.mkdir(parents=True)
    namespace = {"__name__": "__main__", "__file__": str(path)}
    parts = []
    with _environment(PPL_FAST="1", PPL_OUTPUT_DIR=str(figures)):
        for kind, body in split_cells(path.read_text()):
            if kind == "markdown":
                parts.append(body)
                continue
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(compile(body, str(path), "exec"), namespace)
            parts.append(f"```python\n{body}\n```")
            if printed.getvalue().strip():
                parts.append(f"```text\n{printed.getvalue().rstrip()}\n```")
    for image in sorted(figures.glob("*.png")):
        parts.append(f"![{image.stem}]({figures.name}/{image.name})")
    source = path.relative_to(ROOT).as_posix()
    parts.append(f"*Rendered from `{source}` in fast mode (`PPL_FAST=1`); run it in full with "
                 f"`python {source}`.*")
    (out_dir / f"{path.stem}.md").write_text("\n\n".join(parts) + "\n")


@contextlib.contextmanager
def _environment(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def render_all(out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = sorted((ROOT / "tutorials").glob("*.py"))
    for path in paths:
        render(path, out_dir)
    return [p.stem for p in paths]
