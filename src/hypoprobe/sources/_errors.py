"""The sources' error and exit codes; they live in :mod:`hypoprobe.errors`."""

from __future__ import annotations

from ..errors import EXIT_NO_DATA, EXIT_UNREACHABLE, EXIT_USAGE, SourceError

__all__ = ["EXIT_NO_DATA", "EXIT_UNREACHABLE", "EXIT_USAGE", "SourceError"]
