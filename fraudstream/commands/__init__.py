"""One module per ``fraudstream`` command: ``add_parser(subparsers)`` and ``run(args, settings)``."""
