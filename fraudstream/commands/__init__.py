"""One module per ``fraudstream`` command, each with ``add_parser`` and ``run``."""
