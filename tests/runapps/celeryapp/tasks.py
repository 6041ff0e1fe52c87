"""Celery tasks that know nothing about hypoprobe, run eagerly (no broker needed)."""

from __future__ import annotations

import sys
import time

from celery import Celery  # type: ignore[import-untyped]
from digest import render, subject

app = Celery("tasks")
app.conf.task_always_eager = True


@app.task(name="tasks.send_digest")
def send_digest(n: int) -> int:
    return len(subject(n)) + len(render(n))


if __name__ == "__main__":
    for i in range(int(sys.argv[1])):
        send_digest.delay(i)
    print("done", flush=True)
    time.sleep(60)  # until the test has scraped /metrics and stops us
