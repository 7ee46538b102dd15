"""Operations the CLI, the chaos runner and the benchmark share (a layer below all three).

Nothing here parses arguments or prints for a command; errors a user can act on are
``fraudstream.errors.UserError``, which the CLI alone turns into one line and exit 2.
"""
