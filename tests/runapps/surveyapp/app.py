"""A Flask application that knows nothing about hypoprobe: its hot statements are for a
survey to find (a heavy report query over sqlite3, an N+1 loop through SQLAlchemy)."""

from __future__ import annotations

import fcntl
import os
import sqlite3

import helpers
from flask import Flask
from sqlalchemy import create_engine, text

DB = os.environ["RUNAPP_DB"]
ENGINE = create_engine(f"sqlite:///{DB}")
app = Flask(__name__)

# Every gunicorn worker imports this module: one seeds at a time, or two booting at once
# both find the table empty and the second fails to boot on the first one's rows.
with open(f"{DB}.seed-lock", "w") as lock, ENGINE.begin() as setup:
    fcntl.flock(lock, fcntl.LOCK_EX)
    setup.execute(text("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)"))
    if setup.execute(text("SELECT count(*) FROM items")).scalar() == 0:
        setup.execute(
            text("INSERT INTO items VALUES (:i, :n)"),
            [{"i": i, "n": f"item{i}"} for i in range(500)],
        )


@app.get("/report")
def report() -> str:
    conn = sqlite3.connect(DB)
    try:
        conn.execute("SELECT name FROM items WHERE id = 1").fetchall()
        (total,) = conn.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 150000)"
            " SELECT count(*) FROM c"
        ).fetchone()
    finally:
        conn.close()
    return str(total)


@app.get("/items/<int:n>")
def items(n: int) -> str:
    with ENGINE.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM items LIMIT :n"), {"n": n})]
        names = [
            conn.execute(text("SELECT name FROM items WHERE id = :i"), {"i": i}).scalar()
            for i in ids
        ]
    return helpers.render([str(x) for x in names])
