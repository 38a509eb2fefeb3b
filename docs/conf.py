"""Sphinx configuration of the documentation site (``make docs``; built with warnings as
errors, so a broken reference or a docstring docutils cannot read fails the build).

Sphinx rather than MkDocs: autodoc reads the docstrings the doctests already run, and the
tutorials are rendered by ``render_tutorials.py`` (run here before each build) with what
their cells print and the figures they save, so the pages show what the code does today.
"""

import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))
sys.path.insert(0, str(DOCS))

project = "ppl-extension"
author = "the ppl-extension developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]  # napoleon: "Arguments:" sections
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
autodoc_default_options = {"members": True}
autodoc_member_order = "bysource"
myst_heading_anchors = 3
html_theme = "furo"
html_title = "ppl-extension"
nitpicky = False


def _render_tutorials(app):
    from render_tutorials import render_all

    if not app.config.ppl_skip_tutorials:
        render_all(DOCS / "tutorials")


def setup(app):
    app.add_config_value("ppl_skip_tutorials", False, "env")  # -D ppl_skip_tutorials=1: reuse pages
    app.connect("builder-inited", _render_tutorials)
