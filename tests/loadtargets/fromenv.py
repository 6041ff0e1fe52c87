"""A target module for the HYPOPROBE_CONFIG test (imported in a subprocess)."""

from __future__ import annotations


def handler() -> str:
    return "ok"
