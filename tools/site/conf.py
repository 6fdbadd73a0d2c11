"""Sphinx configuration of the course site (``make site``; ``tools/build_site.py`` stages the sources).

Everything a page needs is served from the site itself: no CDN, no web font, no widget JavaScript.
The notebooks are rendered from their stored outputs and never executed. A widget's live view
(``application/vnd.jupyter.widget-view+json``) cannot run without a kernel, so the HTML builder skips
that MIME type and shows the richest static output stored beside it (the chart's SVG or PNG).
"""

from __future__ import annotations

project = "minikit"
author = "the minikit authors"
copyright = "the minikit authors, MIT licence"
extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# --- notebooks: stored outputs only ---------------------------------------------------------------
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # myst-nb's default loads require.js and the widget manager from CDNs
nb_mime_priority_overrides = [  # (builder, MIME type, rank: lowest shown first; None: never)
    ("html", "application/vnd.jupyter.widget-view+json", None),  # a live widget: its static fallback shows
    ("html", "application/vnd.jupyter.widget-state+json", None),
    ("html", "application/javascript", None),  # script outputs would fetch their libraries from a CDN
    # A chart's image before any HTML stored beside it (myst-nb ranks text/html 30 by default).
    ("html", "image/svg+xml", 24),
    ("html", "image/png", 25),
]
nb_merge_streams = True

# --- Markdown: the README's and the notebooks' links ----------------------------------------------
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3  # GLOSSARY.md#p50-and-p95, as GitHub makes them
suppress_warnings = ["myst.header"]  # README and notebooks start their sections at ## or ###

# --- maths: MathJax 2 from the jupyter-server-mathjax package, copied into _static/mathjax --------
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
myst_update_mathjax = False  # its settings are MathJax 3's
mathjax2_config = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]], "processEscapes": True},
    # The package ships the STIX-Web fonts only (as Jupyter's own MathJax settings use them).
    # MathJax_Blank, a font it measures against, is url('about:blank'), which Chromium reports as a CORS error.
    "HTML-CSS": {"availableFonts": [], "webFont": "STIX-Web", "imageFont": None, "preferredFont": None,
                 "styles": {"@font-face": {"font-family": "MathJax_Blank", "src": "local('MathJax_Blank')"}}},
    "MathMenu": {"showLocale": False},
    "menuSettings": {"zoom": "None"},
}

# --- theme: Furo uses the system's fonts and ships its own JavaScript ----------------------------
html_theme = "furo"
html_title = "minikit: small language models, made smaller and faster"
html_static_path = ["_static"]
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
