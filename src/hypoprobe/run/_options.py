"""The options of ``hypoprobe run``: each from the command line, else the environment."""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import _survey
from ..cli import UsageError
from ..errors import ConfigurationError

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_PORT", "ENVIRONMENT", "Options", "add_arguments", "parse"]

DEFAULT_PORT = 9464
DEFAULT_ADDRESS = "127.0.0.1"

#: Option -> environment variable read when the option is not on the command line.
ENVIRONMENT = {
    "config": "HYPOPROBE_CONFIG",
    "metrics_port": "HYPOPROBE_METRICS_PORT",
    "metrics_address": "HYPOPROBE_METRICS_ADDRESS",
    "multiproc_dir": "HYPOPROBE_MULTIPROC_DIR",
    "strict": "HYPOPROBE_STRICT",
    "survey_rate": "HYPOPROBE_SURVEY_RATE",
    "survey_modules": "HYPOPROBE_SURVEY_MODULES",
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Options:
    """What to run and how: every field validated."""

    config: Path | None
    metrics_port: int
    metrics_address: str
    multiproc_dir: Path | None
    strict: bool
    command: tuple[str, ...]
    #: ``--survey``: the survey's settings for the command's processes (None: no survey).
    survey: _survey.Settings | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="the TOML file of hypotheses and targets (env HYPOPROBE_CONFIG)",
    )
    parser.add_argument(
        "--metrics-port",
        metavar="PORT",
        help=f"port of the /metrics endpoint, 0 for any free one "
        f"(default {DEFAULT_PORT}; env HYPOPROBE_METRICS_PORT)",
    )
    parser.add_argument(
        "--metrics-address",
        metavar="ADDR",
        help=f"address of the /metrics endpoint (default {DEFAULT_ADDRESS}; "
        "env HYPOPROBE_METRICS_ADDRESS)",
    )
    parser.add_argument(
        "--multiproc-dir",
        metavar="DIR",
        help="an existing directory for the processes' metric files, kept afterwards "
        "(default: a new one, removed at exit; env HYPOPROBE_MULTIPROC_DIR)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="fail at once on a bad configuration instead of running the command unprobed "
        "(env HYPOPROBE_STRICT=1)",
    )
    parser.add_argument(
        "--survey",
        action="store_true",
        help="survey the command: every SQL statement (and the functions of "
        "--survey-modules) under every endpoint; read it with `hypoprobe survey`",
    )
    parser.add_argument(
        "--survey-rate",
        metavar="FRACTION",
        help="with --survey: the fraction of requests surveyed (default 1; "
        "env HYPOPROBE_SURVEY_RATE)",
    )
    parser.add_argument(
        "--survey-modules",
        metavar="MOD[,MOD...]",
        help="with --survey: also every function of these modules (env HYPOPROBE_SURVEY_MODULES)",
    )
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND [ARG ...]",
        help="the command to run",
    )


def _value(args: argparse.Namespace, name: str, environ: Mapping[str, str]) -> str | None:
    given = getattr(args, name)
    if given is not None:
        return str(given)
    raw = environ.get(ENVIRONMENT[name])
    return raw.strip() if raw is not None and raw.strip() else None


def parse(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Options:
    """Validated options; a bad one raises :class:`UsageError` (exit code 2)."""
    env = os.environ if environ is None else environ
    command = list(args.command or [])
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("run needs a command: hypoprobe run --config perf.toml -- COMMAND ...")
    config = _value(args, "config", env)
    surveyed = bool(getattr(args, "survey", False))
    if config is None and not surveyed:
        raise UsageError("run needs --config FILE (or HYPOPROBE_CONFIG), or --survey")
    survey = _survey_settings(args, env) if surveyed else None
    port_text = _value(args, "metrics_port", env) or str(DEFAULT_PORT)
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise UsageError(f"--metrics-port must be a port number (0-65535), got {port_text!r}")
    address = _value(args, "metrics_address", env) or DEFAULT_ADDRESS
    try:
        ipaddress.ip_address(address)
    except ValueError:
        if address != "localhost":
            raise UsageError(
                f"--metrics-address must be an IP address such as 127.0.0.1 or 0.0.0.0, "
                f"got {address!r}"
            ) from None
    multiproc = _value(args, "multiproc_dir", env)
    multiproc_dir = None
    if multiproc is not None:
        multiproc_dir = Path(multiproc).resolve()
        if not multiproc_dir.is_dir():
            raise UsageError(f"--multiproc-dir {multiproc}: not an existing directory")
    if args.strict:
        strict = True
    else:
        raw = env.get(ENVIRONMENT["strict"], "").strip().lower()
        if raw not in _TRUE | _FALSE:
            raise UsageError(f"HYPOPROBE_STRICT must be 1 or 0, got {raw!r}")
        strict = raw in _TRUE
    return Options(
        config=None if config is None else Path(config).resolve(),
        metrics_port=port,
        metrics_address=address,
        multiproc_dir=multiproc_dir,
        strict=strict,
        command=tuple(command),
        survey=survey,
    )


def _survey_settings(args: argparse.Namespace, env: Mapping[str, str]) -> _survey.Settings:
    rate = _value(args, "survey_rate", env)
    modules = _value(args, "survey_modules", env)
    try:
        return (
            _survey.from_environment(
                {
                    _survey.ENV_SURVEY: "1",
                    _survey.ENV_RATE: rate or "",
                    _survey.ENV_MODULES: modules or "",
                    _survey.ENV_MAX_CANDIDATES: env.get(_survey.ENV_MAX_CANDIDATES, ""),
                    _survey.ENV_SLOW_THRESHOLD: env.get(_survey.ENV_SLOW_THRESHOLD, ""),
                }
            )
            or _survey.Settings()
        )
    except ConfigurationError as exc:
        raise UsageError(f"--survey: {exc}") from None
