"""A slow discount rule and a price lookup through Django's database connection."""

from __future__ import annotations

import time

from django.db import connection  # type: ignore[import-untyped]


def lookup(item_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER, price INTEGER)")
        cursor.execute("SELECT price FROM items WHERE id = %s", [item_id])
        row = cursor.fetchone()
    return int(row[0]) if row else 100


def discount(price: int) -> int:
    time.sleep(0.03)  # the slowness under investigation
    return price * 9 // 10
