"""JSON Schemas of the contracts, generated from their definitions (``fraudstream.contracts``).

``python -m fraudstream.contracts.generate`` rewrites ``fraudstream/contracts/schemas/``;
``--check`` only says whether the files are up to date (a unit test fails while they differ).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fraudstream.contracts import CONTRACTS

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
BASE_ID = "https://fraudstream.invalid/schemas/"


def schema(name: str, standalone: bool = True) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one contract, with field descriptions.

    ``standalone=False``: without ``$schema`` and ``$id``, to embed in the OpenAPI document.
    """
    from pydantic import ConfigDict, TypeAdapter, with_config

    # The field docstrings become descriptions (pydantic reads them from the source).
    contract = with_config(ConfigDict(use_attribute_docstrings=True))(CONTRACTS[name])
    body = TypeAdapter(contract).json_schema()
    if not standalone:
        return body
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{BASE_ID}{name}.schema.json", **body}


def render(name: str) -> str:
    return json.dumps(schema(name), indent=2, ensure_ascii=False) + "\n"


def stale() -> list[Path]:
    """The schema files that differ from what the definitions generate (or are missing)."""
    return [SCHEMAS_DIR / f"{name}.schema.json" for name in CONTRACTS
            if not (SCHEMAS_DIR / f"{name}.schema.json").exists()
            or (SCHEMAS_DIR / f"{name}.schema.json").read_text() != render(name)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fraudstream.contracts.generate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a schema file is out of date, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"{path} is out of date: run python -m fraudstream.contracts.generate",
                  file=sys.stderr)
        return 1 if out_of_date else 0
    SCHEMAS_DIR.mkdir(exist_ok=True)
    for name in CONTRACTS:
        (SCHEMAS_DIR / f"{name}.schema.json").write_text(render(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
