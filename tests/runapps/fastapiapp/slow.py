"""The suspect code of the FastAPI application: scoring, and a sqlite3 lookup."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time


def connect() -> sqlite3.Connection:
    db = os.environ["RUNAPP_DB"]
    conn = sqlite3.connect(db, check_same_thread=False)
    # Every uvicorn worker connects at start: one seeds at a time, or two starting at once
    # both find the table empty and seed it twice.
    with open(f"{db}.seed-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn.execute("CREATE TABLE IF NOT EXISTS plans (id INTEGER, price INTEGER)")
        if conn.execute("SELECT count(*) FROM plans").fetchone()[0] == 0:
            conn.executemany("INSERT INTO plans VALUES (?, ?)", [(i, i * 10) for i in range(50)])
        conn.commit()
    return conn


def score(n: int) -> int:
    time.sleep(0.03)  # the slowness under investigation
    return n * 2


def price(conn: sqlite3.Connection, plan: int) -> int:
    row = conn.execute("SELECT price FROM plans WHERE id = ?", (plan,)).fetchone()
    return int(row[0]) if row else 0
