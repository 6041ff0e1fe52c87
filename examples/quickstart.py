"""The README's quick start: state a hypothesis, probe, serve requests, judge.

Run it, then read the verdict:
    python examples/quickstart.py quickstart.json
    hypoprobe report --snapshot quickstart.json
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from pathlib import Path

try:
    import hypoprobe
except ModuleNotFoundError:  # the first stumble: a Python without hypoprobe installed
    sys.exit(
        "hypoprobe is not installed for this Python. After `make demo`, activate its "
        "environment (`. .venv/bin/activate`) or run `.venv/bin/python examples/quickstart.py`."
    )

# 1. State the hypothesis: "the count query makes GET /campaigns slow", from one slow
#    request in which the query took 1.2 s of 1.5 s.
hypoprobe.hypothesis(
    "PERF-123",
    claim="the subscriber count query dominates GET /campaigns",
    endpoint="GET /campaigns",
    min_share=0.5,
    observed=hypoprobe.Observation(probe_seconds=1.2, endpoint_seconds=1.5),
    slow_threshold=0.05,
)


# 2. Probe the suspect code path.
@hypoprobe.probe("PERF-123")
def count_subscribers(account_size: int) -> int:
    time.sleep(0.0001 * account_size)  # stands in for the query
    return account_size


# 3. Every request is an endpoint scope (the WSGI/ASGI middlewares do this for you).
def campaigns_view(rng: random.Random) -> None:
    with hypoprobe.endpoint("GET /campaigns"):
        huge = rng.random() < 0.01  # one request in a hundred is for a huge account
        count_subscribers(100 if huge else 1)
        time.sleep(0.004)  # templates, serialisation, everything else


def main(path: str) -> None:
    rng = random.Random(7)
    for _ in range(400):
        campaigns_view(rng)
    # 4. Freeze what was recorded; `hypoprobe report` judges it.
    with open(path, "w", encoding="utf-8") as f:
        f.write(hypoprobe.snapshot().to_json())
    # The command next to this Python when `hypoprobe` on PATH is another one (or none):
    # run as .venv/bin/python without activating, the plain name would not be found.
    here = Path(sys.executable).parent / "hypoprobe"
    on_path = shutil.which("hypoprobe")
    command = "hypoprobe" if on_path and Path(on_path) == here else str(here)
    print(f"wrote {path}; now run: {command} report --snapshot {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "quickstart.json")
