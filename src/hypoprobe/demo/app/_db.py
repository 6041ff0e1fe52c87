"""The campaigns app's database: SQLite by default, PostgreSQL when given a URL.

One connection per thread (the WSGI server may serve from any thread), autocommit, and one
place that turns the app's ``?`` placeholders into psycopg's ``%s``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["Database"]

Row = tuple[Any, ...]


class Database:
    """Where the app's data lives: ``sqlite:///path`` or ``postgresql://...``.

    Example::

        db = Database("sqlite:////tmp/campaigns.sqlite")
        rows = db.fetchall("SELECT id, plan FROM accounts WHERE id = ?", (1,))
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = "postgresql" if url.startswith(("postgresql:", "postgres:")) else "sqlite"
        if self.kind == "sqlite":
            # SQLAlchemy's spelling: sqlite:///relative.db, sqlite:////absolute.db
            self.path = Path(url.removeprefix("sqlite:///"))
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def connection(self) -> Any:
        """This thread's connection, opened on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _connect(self) -> Any:
        if self.kind == "sqlite":
            # isolation_level=None: autocommit, like the PostgreSQL connection below.
            return sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        import psycopg

        return psycopg.connect(self.url, autocommit=True)

    def sql(self, statement: str) -> str:
        """The statement with this driver's placeholder style."""
        return statement if self.kind == "sqlite" else statement.replace("?", "%s")

    def fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self.connection().cursor()
        try:
            cur.execute(self.sql(statement), tuple(params))
            return list(cur.fetchall())
        finally:
            cur.close()

    def fetchone(self, statement: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.fetchall(statement, params)
        return rows[0] if rows else None

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        cur = self.connection().cursor()
        try:
            cur.execute(self.sql(statement), tuple(params))
        finally:
            cur.close()

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            # Another thread's sqlite connection may refuse; it is closed when collected.
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()
