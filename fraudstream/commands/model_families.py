"""The model family names the command line offers, listed without importing scikit-learn.

``model_registry.families`` is the definition; importing it loads scikit-learn (over a second),
which ``fraudstream --help`` must not pay. ``tests/unit/test_cli_startup.py`` fails when this
copy and the definition disagree.
"""

from __future__ import annotations

MODEL_FAMILIES = ("blend", "hgb", "logreg", "rf")
DEFAULT_MODEL_FAMILY = "blend"
MODEL_HELP = f"model family: {', '.join(MODEL_FAMILIES)} (default {DEFAULT_MODEL_FAMILY})"
