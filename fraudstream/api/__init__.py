"""The HTTP API: submit transactions, read decisions, receive alerts (``fraudstream api``)."""
