"""The error a command reports as one line and a non-zero exit."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message says what to do next."""
