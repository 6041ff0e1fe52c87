"""The suspect code of the Celery tasks: rendering the digest."""

from __future__ import annotations

import time


def render(n: int) -> str:
    time.sleep(0.02)  # the slowness under investigation
    return "x" * n


def subject(n: int) -> str:
    return f"digest {n}"
