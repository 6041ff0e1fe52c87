"""The suspect code of the FastAPI application: scoring, and a sqlite3 lookup."""

from __future__ import annotations

import os
import sqlite3
import time


def connect() -> sqlite3.Connection:
    conn = sqlite3.connect(os.environ["RUNAPP_DB"], check_same_thread=False)
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
