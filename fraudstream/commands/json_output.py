"""``--json [FILE]``, the same on every command: the command's result as one JSON document.

``--json FILE`` writes it to FILE (folders created) besides the usual text; ``--json`` alone
or ``--json -`` prints it to standard output instead of the text, so that a script can read
stdout as JSON (progress and notes stay on stderr).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

STDOUT = "-"


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", dest="json_out", nargs="?", const=STDOUT, default=None,
                        metavar="FILE", help=f"write {what} as JSON to FILE (besides the text); "
                        "without FILE, or with -, print it to stdout instead of the text")


def to_stdout(args: argparse.Namespace) -> bool:
    """True when the JSON replaces the text on stdout."""
    return bool(args.json_out == STDOUT)


def json_file(args: argparse.Namespace) -> Path | None:
    """The file the JSON goes to (None: no file)."""
    return None if args.json_out in (None, STDOUT) else Path(args.json_out)


def emit(args: argparse.Namespace, document: Any, text: Callable[[], None]) -> None:
    """Show ``document``: as JSON on stdout, or as ``text()`` plus the JSON file if asked."""
    rendered = json.dumps(document, indent=2)
    if to_stdout(args):
        print(rendered)
        return
    text()
    path = json_file(args)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered + "\n")
