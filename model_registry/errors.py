"""Errors of the model registry: one root, a stable code each, retriable or not.

The HTTP status of every code lives here, in one table, so the API and the CLI agree on what
each failure means (the MLflow registry does the same with its error codes).
"""

from __future__ import annotations


class RegistryError(Exception):
    """Root of every registry failure; ``code`` is stable, ``retriable`` says if retrying helps."""

    code = "registry_error"
    retriable = False


class StoreUnavailable(RegistryError):
    """A store (or too many of them) did not answer; the operation was not done."""

    code = "store_unavailable"
    retriable = True


class NotFound(RegistryError):
    """No such version or alias."""

    code = "not_found"


class InvalidRequest(RegistryError):
    """The request itself is wrong (bad alias name, nothing to roll back to...)."""

    code = "invalid_request"


class ModelRefused(RegistryError):
    """No replica of a version passed verification; ``reason`` is a bounded metric label."""

    code = "model_refused"

    #: Every reason a load can be refused for (the label values of the refusal metric).
    REASONS = ("checksum", "signature", "features", "untrusted", "load_error",
               "store_unavailable")

    def __init__(self, message: str, reason: str = "load_error", *,
                 retriable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason if reason in self.REASONS else "load_error"
        # True when some store did not answer: its copy may be the good one, so the same
        # version can load later and must not be remembered as refused.
        self.retriable = retriable


#: Error code -> HTTP status, the one place the mapping is defined.
HTTP_STATUS: dict[str, int] = {
    RegistryError.code: 500,
    StoreUnavailable.code: 503,
    NotFound.code: 404,
    InvalidRequest.code: 400,
    ModelRefused.code: 422,
}


def http_status(error: RegistryError) -> int:
    """The HTTP status an API answers ``error`` with."""
    return HTTP_STATUS.get(error.code, 500)
