"""A target module that tests/test_load.py imports *before* loading the configuration."""

from __future__ import annotations

RETRIES = 3


def render(name: str) -> str:
    return f"<h1>{name}</h1>"


class Base:
    def greet(self) -> str:
        return "hello"


class Child(Base):
    """Inherits ``greet``: probing ``Child.greet`` must not touch ``Base``."""
