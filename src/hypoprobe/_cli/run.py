"""``hypoprobe run``: run a command probed by a TOML file, with one ``/metrics`` for it all."""

from __future__ import annotations

import argparse

from ..run import _launcher, _options

HELP = "run COMMAND probed by a TOML file, with no code change; one /metrics for all its processes"

EXAMPLES = """examples:
  hypoprobe run --config perf.toml -- gunicorn -w 2 app:app
  hypoprobe run --config perf.toml --metrics-port 9464 -- python manage.py runserver
  hypoprobe report --metrics-url http://127.0.0.1:9464/metrics   (then, from another shell)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _options.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return _launcher.launch(_options.parse(args))
