"""A target module whose configured attribute does not exist (found when it is imported)."""

from __future__ import annotations


def real_name() -> int:
    return 1
