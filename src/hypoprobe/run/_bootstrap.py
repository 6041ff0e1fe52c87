"""What runs first in every Python process of ``hypoprobe run``'s command.

Called by the ``sitecustomize`` the launcher puts on ``PYTHONPATH``: load the TOML file
(before the application imports anything, so ``from x import y`` binds the probed
function), arm the framework hooks, and report to the launcher, once now and once when
the application has started. A bad configuration is printed prominently and the
application runs unprobed; with ``HYPOPROBE_STRICT=1`` the process exits with status 2.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

from . import _status

__all__ = ["banner", "bootstrap", "started"]

_lock = threading.Lock()
#: The pid whose application was reported started (forked workers start again).
_started_pid = 0
_error: str | None = None
_TRUE = {"1", "true", "yes", "on"}


def banner(message: str, *, unprobed: bool) -> str:
    """The configuration error as the launcher and the bootstrap print it."""
    rule = "!" * 78
    tail = (
        "The command runs UNPROBED: fix the file and restart (or use --strict to stop here)."
        if unprobed
        else "Stopped (--strict)."
    )
    return f"{rule}\nhypoprobe run: the configuration was not loaded:\n  {message}\n{tail}\n{rule}"


def _report(started: bool) -> None:
    from . import _states

    run_dir = os.environ.get(_status.ENV_VAR)
    if not run_dir:
        return
    try:
        report = _status.Report(
            pid=os.getpid(),
            started=started,
            hypotheses=_states.hypothesis_count(),
            targets=_states.target_states(),
            error=_error,
        )
    except Exception:
        return
    _status.write(run_dir, report)


def started() -> None:
    """The application of this process has started (called by the framework hooks)."""
    global _started_pid
    with _lock:
        if _started_pid == os.getpid():
            return
        _started_pid = os.getpid()
    try:
        from . import _states

        _states.settle()
        _report(True)
    except Exception:
        pass


def bootstrap() -> None:
    """Load the configuration and arm the hooks; never raises."""
    global _error
    strict = os.environ.get("HYPOPROBE_STRICT", "").strip().lower() in _TRUE
    # hypoprobe's import would load $HYPOPROBE_CONFIG itself, logging errors; load it here
    # instead, to report the outcome. Grandchildren still see the variable.
    config = os.environ.pop("HYPOPROBE_CONFIG", None)
    try:
        import hypoprobe
        from hypoprobe.errors import ConfigurationError
    except Exception as exc:
        print(f"hypoprobe run: cannot import hypoprobe: {exc}; not probed", file=sys.stderr)
        return
    finally:
        if config is not None:
            os.environ["HYPOPROBE_CONFIG"] = config
    if config:
        try:
            hypoprobe.load(config)
        except ConfigurationError as exc:
            _error = str(exc)
        except Exception as exc:
            _error = f"{config}: {type(exc).__name__}: {exc}"
        if _error is not None:
            print(banner(_error, unprobed=not strict), file=sys.stderr, flush=True)
            _report(False)
            if strict:
                os._exit(2)
            return
    try:  # hypoprobe run --survey
        from .. import _survey

        settings = _survey.from_environment()
        if settings is not None:
            _survey.apply(settings)
    except Exception as exc:
        print(f"hypoprobe run: the survey is not running: {exc}", file=sys.stderr)
    try:
        from . import _frameworks

        _frameworks.install(started)
    except Exception as exc:
        print(f"hypoprobe run: web frameworks not instrumented: {exc}", file=sys.stderr)
    _report(False)
    # A command that is not a server (a script, a job) never "starts": its last word is
    # what it had attached when it exited.
    atexit.register(_at_exit)


def _at_exit() -> None:
    if _started_pid != os.getpid():
        _report(False)
