"""Throwaway application packages, written to a temporary directory per test.

A test that probes code by import path needs a module nobody imported yet, with a unique
name (imports are process-wide). :func:`make_app` writes ``<name>/__init__.py`` (empty: a
parent package that imports nothing) and ``<name>/models.py`` with a class whose method
advances the test's fake clock, and returns the package name; the directory is put on
``sys.path`` only when the test says so (``on_path``), as a server does when it loads the
application after hypoprobe.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

MODELS = """\
CLOCK = None


def _spend(seconds):
    if CLOCK is not None:
        CLOCK.advance_seconds(seconds)


class User:
    def followers_count(self, seconds):
        _spend(seconds)
        return 3

    def feed(self, seconds):
        _spend(seconds)
        return []


class Post:
    def render(self, seconds):
        _spend(seconds)
        return "<p>"


def helper(seconds):
    _spend(seconds)
    return 1


def unused(seconds):
    _spend(seconds)
"""

#: ``from <pkg>.models import helper`` at import time: an early binding of helper.
VIEWS = """\
from {pkg}.models import helper as bound_helper


def explore(seconds):
    return bound_helper(seconds)
"""


class AppFactory:
    def __init__(self, root: Path, unique: Callable[[str], str]) -> None:
        self.root = root
        self.unique = unique
        self.names: list[str] = []
        self.paths: list[str] = []

    def __call__(self, on_path: bool = True) -> str:
        name = "app_" + self.unique("").replace("-", "_").lower()
        pkg = self.root / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "models.py").write_text(MODELS)
        (pkg / "views.py").write_text(textwrap.dedent(VIEWS.format(pkg=name)))
        self.names.append(name)
        if on_path:
            self.put_on_path()
        return name

    def put_on_path(self) -> None:
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))
            self.paths.append(str(self.root))

    def cleanup(self) -> None:
        for name in self.names:
            for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[mod]
        for path in self.paths:
            if path in sys.path:
                sys.path.remove(path)


def app_factory(tmp_path: Path, unique_id: Callable[[str], str]) -> Iterator[AppFactory]:
    """The body of a test module's ``make_app`` fixture: ``yield from app_factory(...)``."""
    factory = AppFactory(tmp_path / "apps", unique_id)
    (tmp_path / "apps").mkdir()
    yield factory
    factory.cleanup()


def toml(hid: str, endpoint: str, probes: list[str], min_share: float = 0.5) -> str:
    targets = ",\n  ".join(f'"{p}"' for p in probes)
    return (
        "[[hypothesis]]\n"
        f'id = "{hid}"\n'
        f'claim = "the followers query dominates {endpoint}"\n'
        f'endpoint = "{endpoint}"\n'
        f"min_share = {min_share}\n"
        f"probes = [\n  {targets},\n]\n"
    )
