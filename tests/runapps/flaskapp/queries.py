"""The suspect code of the Flask application: a slow query and a cheap formatter."""

from __future__ import annotations

import fcntl
import os
import time

from sqlalchemy import create_engine, text

ENGINE = create_engine(f"sqlite:///{os.environ['RUNAPP_DB']}")


def setup() -> None:
    # Every gunicorn worker calls this: one seeds at a time, or two booting at once both
    # find the table empty and seed it twice.
    with open(f"{os.environ['RUNAPP_DB']}.seed-lock", "w") as lock, ENGINE.begin() as conn:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn.execute(text("CREATE TABLE IF NOT EXISTS followers (account INTEGER, name TEXT)"))
        if conn.execute(text("SELECT count(*) FROM followers")).scalar() == 0:
            conn.execute(
                text("INSERT INTO followers VALUES (:a, :n)"),
                [{"a": i % 5, "n": f"user{i}"} for i in range(200)],
            )


def load_followers(account: int) -> list[str]:
    with ENGINE.connect() as conn:
        rows = conn.execute(
            text("SELECT name FROM followers WHERE account = :a"), {"a": account}
        ).fetchall()
    time.sleep(0.02)  # the slowness under investigation
    return [r[0] for r in rows]


def format_names(names: list[str]) -> str:
    return ",".join(names)
