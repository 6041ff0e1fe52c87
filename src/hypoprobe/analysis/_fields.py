"""A result's dataclass fields as JSON values: what the ``to_dict`` of verdicts and
comparisons share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

__all__: list[str] = []


def _same(name: str, value: Any) -> Any:
    return value


def json_fields(obj: Any, convert: Callable[[str, Any], Any] = _same) -> dict[str, Any]:
    """``obj``'s fields by name, each through ``convert(name, value)``, tuples as lists.

    The distributions kept for plots (fields named ``*_histogram*``) are not part of the
    JSON contract: they are left out.

    Example: ``json_fields(comparison)["hypothesis"]`` is ``"PERF-1"``.
    """
    out: dict[str, Any] = {}
    for f in fields(obj):
        if "_histogram" in f.name:
            continue
        value = convert(f.name, getattr(obj, f.name))
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out
