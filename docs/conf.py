"""Sphinx configuration of the ppl_kernels documentation.

Build with ``python -m sphinx -W -b html docs docs/_build/html``.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
os.environ.setdefault("MPLBACKEND", "Agg")

project = "ppl_kernels"
author = "ppl_kernels developers"
copyright = "2025, ppl_kernels developers"
release = version = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

# numpydoc-style docstrings, as Pyro, NumPyro and ArviZ write them
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes" as fields: dataclass members are not described twice
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}

templates_path = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]
html_theme_options = {"description": "Tempered, norm-adjusting SGHMC for Pyro and NumPyro", "page_width": "1100px"}
