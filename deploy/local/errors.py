"""Errors of the local stack launcher."""


class StackError(RuntimeError):
    """The local stack cannot do what was asked; the message says what to do next."""

    retriable = False


class ServiceNotReady(StackError):
    """A started service did not become ready in time (it may still come up)."""

    retriable = True
