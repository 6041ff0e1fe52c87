"""``hypoprobe run``: run a command probed by a TOML file, with one ``/metrics`` for it all."""

from __future__ import annotations

import argparse

from ..run import _launcher, _options

HELP = "run COMMAND probed by a TOML file, with no code change; one /metrics for all its processes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _options.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return _launcher.launch(_options.parse(args))
