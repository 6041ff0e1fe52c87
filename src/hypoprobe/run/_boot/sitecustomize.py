"""hypoprobe run's bootstrap, put first on ``PYTHONPATH`` by the launcher.

Python imports one ``sitecustomize`` at start-up, the first on ``sys.path``; this one runs
the one it hides (the distribution's or the virtualenv's, if any) under its own name, as
``opentelemetry-instrument``'s did, then loads hypoprobe's configuration before the
application imports anything. It never stops the interpreter on an error of its own.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import traceback


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        # What site.py itself does with a failing sitecustomize: say so, carry on.
        print(f"Error in sitecustomize {spec.origin}:", file=sys.stderr)
        traceback.print_exc()


def _bootstrap() -> None:
    if not os.environ.get("HYPOPROBE_RUN_DIR"):
        return
    try:
        from hypoprobe.run._bootstrap import bootstrap
    except Exception as exc:
        print(
            f"hypoprobe run: {sys.executable} (pid {os.getpid()}) cannot import hypoprobe "
            f"({exc}); this process is not probed",
            file=sys.stderr,
        )
        return
    bootstrap()


_chain()
_bootstrap()
