"""A target module imported only after its configuration was unloaded."""

from __future__ import annotations


def work() -> int:
    return 42
