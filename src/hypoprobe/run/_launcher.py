"""The parent process of ``hypoprobe run``: it starts the command and stays its parent.

1. Load the configuration here first, to fail fast (``--strict``) or say prominently that
   the command runs unprobed; the hypotheses registered here are the ones ``/metrics``
   describes.
2. Create the run directory (removed at exit): the processes' reports, and the
   multi-process metric directory unless ``--multiproc-dir`` names one to keep.
3. Bind ``/metrics`` (a busy port is a usage error before anything starts), start the
   command in its own process group with the bootstrap on ``PYTHONPATH``, then serve.
   This process is the only one that serves and compacts the directory.
4. Forward the signals it receives to the command, print the summary once the
   application has started, and exit with the command's exit code (128 + N when a
   signal N ended it) after stopping whatever the command left running in its group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from .._serving import BackgroundServer
from .._survey import (
    ENV_MAX_CANDIDATES,
    ENV_MODULES,
    ENV_RATE,
    ENV_SLOW_THRESHOLD,
    ENV_SURVEY,
    Settings,
)
from ..errors import EXIT_USAGE, UsageError
from . import _states, _status
from ._bootstrap import banner
from ._options import Options
from ._serve import bind_metrics

__all__ = ["BOOT_DIR", "SUMMARY_AFTER_SECONDS", "child_environment", "launch", "summary"]

#: The directory holding the bootstrap's ``sitecustomize.py`` (and nothing else).
BOOT_DIR = str(Path(__file__).resolve().parent / "_boot")
#: Print the summary this long after the start even if no application reported started.
SUMMARY_AFTER_SECONDS = 60.0
#: How long the command's leftover processes get between SIGTERM and SIGKILL.
_GRACE_SECONDS = 5.0
_FORWARDED = tuple(
    getattr(signal, name)
    for name in (
        "SIGINT",
        "SIGTERM",
        "SIGHUP",
        "SIGQUIT",
        "SIGUSR1",
        "SIGUSR2",
        "SIGTTIN",
        "SIGTTOU",
        "SIGWINCH",
    )
    if hasattr(signal, name)
)


def _say(line: str) -> None:
    print(f"hypoprobe run: {line}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _import_path(environ: Mapping[str, str]) -> Iterator[None]:
    """The command's working directory and PYTHONPATH, as its processes will see them."""
    extra = [os.getcwd(), *(p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    added = [p for p in dict.fromkeys(extra) if p not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for p in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(p)


def _load(config: Path) -> str | None:
    """Load the file in this process; the error message, or None when it loaded."""
    import hypoprobe
    from hypoprobe.errors import ConfigurationError

    with _import_path(os.environ):
        try:
            hypoprobe.load(config)
        except ConfigurationError as exc:
            message = str(exc)
            if "no module named" in message:
                message += (
                    "; run hypoprobe run from the directory the application's modules are "
                    "in, or add it to PYTHONPATH"
                )
            return message
    return None


def survey_environment(settings: Settings) -> dict[str, str]:
    """What tells the bootstrap of each of the command's processes to survey."""
    return {
        ENV_SURVEY: "1",
        ENV_RATE: repr(settings.rate),
        ENV_MODULES: ",".join(settings.modules),
        ENV_MAX_CANDIDATES: str(settings.max_candidates),
        ENV_SLOW_THRESHOLD: repr(settings.slow_threshold),
    }


def child_environment(
    environ: Mapping[str, str],
    *,
    config: Path | None,
    run_dir: Path,
    metrics_dir: Path,
    probed: bool,
    strict: bool,
) -> dict[str, str]:
    """The command's environment: the bootstrap first on PYTHONPATH, then its directory."""
    env = dict(environ)
    env["HYPOPROBE_MULTIPROC_DIR"] = str(metrics_dir)
    env["HYPOPROBE_STRICT"] = "1" if strict else "0"
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOT_DIR]
    if probed:
        if config is not None:
            env["HYPOPROBE_CONFIG"] = str(config)
        else:
            env.pop("HYPOPROBE_CONFIG", None)
        env[_status.ENV_VAR] = str(run_dir)
        # The working directory too (as opentelemetry-instrument does): gunicorn and
        # manage.py add it only when they load the app, after the bootstrap has run.
        cwd = os.getcwd()
        path = [BOOT_DIR, *([] if cwd in path else [cwd]), *path]
    else:
        env.pop("HYPOPROBE_CONFIG", None)
        env.pop(_status.ENV_VAR, None)
    if path:
        env["PYTHONPATH"] = os.pathsep.join(path)
    else:
        env.pop("PYTHONPATH", None)
    return env


def summary(
    hypotheses: int, targets: list[_states.TargetState], url: str, note: str = ""
) -> list[str]:
    """The summary line, then one line per failed target (``file:line: target: why``)."""
    counts = {s: sum(1 for t in targets if t.state == s) for s in ("attached", "pending", "failed")}
    attached = counts["attached"]
    head = (
        f"{hypotheses} {'hypothesis' if hypotheses == 1 else 'hypotheses'}, "
        f"{attached} {'target' if attached == 1 else 'targets'} attached, "
        f"{counts['pending']} pending, {counts['failed']} failed; /metrics on {url}"
    )
    lines = [head + (f" ({note})" if note else "")]
    lines += [f"FAILED {t.where}: {t.target}: {t.reason}" for t in targets if t.state == "failed"]
    return lines


class _Summary:
    """Prints the summary once: from the first process whose application started."""

    def __init__(self, status_dir: Path, url: str, hypotheses: int) -> None:
        self.status_dir = status_dir
        self.url = url
        self.hypotheses = hypotheses
        self.deadline = time.monotonic() + SUMMARY_AFTER_SECONDS
        self.done = False

    def poll(self, final: bool = False) -> None:
        if self.done:
            return
        reports = _status.read_all(self.status_dir)
        started = [r for r in reports if r.started]
        if not started and not final and time.monotonic() < self.deadline:
            return
        self.done = True
        if started:
            chosen, note = started[0], ""
        elif reports:
            # At the end, the last report is the final word; before, it is provisional.
            chosen = reports[-1]
            note = "" if final else "the application has not reported started yet"
        else:
            targets = _states.target_states()
            for line in summary(
                self.hypotheses, targets, self.url, "no Python process of the command reported"
            ):
                _say(line)
            return
        for line in summary(chosen.hypotheses, chosen.targets, self.url, note):
            _say(line)


def _spawn(command: tuple[str, ...], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Its own process group: the signals we forward reach it once (not also from the
    # terminal), and whatever it leaves behind can be stopped as a group.
    kwargs: dict[str, Any] = {}
    if sys.version_info >= (3, 11):
        kwargs["process_group"] = 0
    else:  # pragma: no cover - Python 3.10
        kwargs["preexec_fn"] = os.setpgrp
    return subprocess.Popen(list(command), env=env, **kwargs)


def _stop_group(pgid: int) -> None:
    """Stop what the command left running in its process group: TERM, then KILL."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    end = time.monotonic() + _GRACE_SECONDS
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class _Forwarder:
    """Forwards the signals this process receives to the command, once it exists.

    Installed before the command starts, so a signal that arrives in between is not lost
    (nor does it kill the launcher and orphan the command): it is sent on start.
    """

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.pending: list[int] = []
        self.previous = {sig: signal.signal(sig, self.forward) for sig in _FORWARDED}

    def forward(self, signum: int, frame: FrameType | None) -> None:
        if self.child is None:
            self.pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.child.pid, signum)

    def started(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        for signum in self.pending:
            self.forward(signum, None)
        self.pending.clear()

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _supervise(child: subprocess.Popen[bytes], report: _Summary) -> int:
    while True:
        try:
            code = child.wait(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            report.poll()
    report.poll(final=True)
    return 128 - code if code < 0 else code


def launch(options: Options) -> int:
    """Run ``options.command`` probed by ``options.config``; return its exit code.

    Example::

        code = launch(Options(Path("perf.toml"), 9464, "127.0.0.1", None, False,
                              ("gunicorn", "-w", "2", "app:app")))
    """
    from prometheus_client import CollectorRegistry

    import hypoprobe

    run_dir = Path(tempfile.mkdtemp(prefix="hypoprobe-run-"))
    server: BackgroundServer | None = None
    child: subprocess.Popen[bytes] | None = None
    forwarder = _Forwarder()
    try:
        status_dir = run_dir / "status"
        status_dir.mkdir()
        metrics_dir = options.multiproc_dir or run_dir / "metrics"
        metrics_dir.mkdir(exist_ok=True)
        # A registry of our own: the launcher's process metrics would describe the
        # launcher, not the application.
        registry = CollectorRegistry(auto_describe=True)
        hypoprobe.configure(multiproc_dir=str(metrics_dir), registry=registry)
        if options.config is None:
            error = None
        elif options.config.exists():
            error = _load(options.config)
        else:
            error = f"{options.config}: no such file"
        if error is not None:
            print(banner(error, unprobed=not options.strict), file=sys.stderr, flush=True)
            if options.strict:
                return EXIT_USAGE
        try:
            server = bind_metrics(registry, options.metrics_address, options.metrics_port)
        except OSError as exc:
            raise UsageError(
                f"cannot serve /metrics on {options.metrics_address}:{options.metrics_port}: "
                f"{exc.strerror or exc}; choose another --metrics-port"
            ) from None
        env = child_environment(
            os.environ,
            config=options.config,
            run_dir=status_dir,
            metrics_dir=metrics_dir,
            probed=error is None,
            strict=options.strict,
        )
        if options.survey is not None:
            env.update(survey_environment(options.survey))
        try:
            child = _spawn(options.command, env)
        except FileNotFoundError:
            _say(f"command not found: {options.command[0]}")
            return 127
        except PermissionError:
            _say(f"command not executable: {options.command[0]}")
            return 126
        forwarder.started(child)
        server.start()
        if error is not None:
            _say(f"configuration not loaded, the command runs unprobed; /metrics on {server.url}")
            report = _Summary(status_dir, server.url, 0)
            report.done = True
        else:
            report = _Summary(status_dir, server.url, _states.hypothesis_count())
        return _supervise(child, report)
    finally:
        forwarder.restore()
        if child is not None:
            if child.poll() is None:  # we are leaving on an error of our own
                with contextlib.suppress(ProcessLookupError):
                    child.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=_GRACE_SECONDS)
            _stop_group(child.pid)
        if server is not None:
            server.stop()
        hypoprobe.configure(multiproc_dir=None)
        shutil.rmtree(run_dir, ignore_errors=True)
