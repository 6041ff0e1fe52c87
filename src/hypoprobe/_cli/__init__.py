"""The subcommands of ``hypoprobe`` (see :mod:`hypoprobe.cli` for the table of them)."""
