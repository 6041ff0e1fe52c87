"""Schema and seeded data of the campaigns app, built once and reused.

The data is shaped like an email-marketing customer base: many small free accounts, a few
dozen busy pro accounts sending many campaigns to small lists, and three enterprise accounts
with ~10^5 subscribers each but few campaigns. That shape is what makes the demo's story:
the subscriber-count query is slow only for the rare huge accounts, while the per-campaign
statistics loop (an N+1) costs every busy account on every page view.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from ._db import Database

__all__ = ["DATA_VERSION", "PLANS", "NotTheDemosDatabase", "ensure", "is_seeded"]

#: Bump when the schema or the generated data changes: cached SQLite files are per version.
DATA_VERSION = 1
#: Seed of the generated data (the load generator has its own seed).
DATA_SEED = 20_240_611

#: plan -> (accounts, lists per account, subscribers per account, campaigns, batches per
#: campaign): each a (low, high) range, inclusive.
PLANS: dict[str, tuple[int, tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]]
PLANS = {
    "free": (150, (1, 1), (50, 400), (3, 10), (4, 10)),
    "pro": (45, (2, 4), (1_000, 4_000), (25, 60), (15, 30)),
    "enterprise": (3, (3, 5), (80_000, 120_000), (8, 14), (20, 40)),
}

_SCHEMA = """
CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL,
    created_at INTEGER NOT NULL);
CREATE TABLE lists (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, name TEXT NOT NULL);
CREATE TABLE subscribers (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL,
    list_id INTEGER NOT NULL, email TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
    created_at INTEGER NOT NULL);
CREATE TABLE campaigns (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL,
    list_id INTEGER NOT NULL, subject TEXT NOT NULL, status TEXT NOT NULL,
    created_at INTEGER NOT NULL);
CREATE TABLE sends (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL,
    campaign_id INTEGER NOT NULL, batch INTEGER NOT NULL, delivered INTEGER NOT NULL,
    opens INTEGER NOT NULL, clicks INTEGER NOT NULL, bounces INTEGER NOT NULL,
    sent_at INTEGER NOT NULL);
CREATE INDEX lists_account ON lists (account_id);
CREATE INDEX subscribers_account ON subscribers (account_id);
CREATE INDEX subscribers_list ON subscribers (list_id);
CREATE INDEX campaigns_account ON campaigns (account_id);
CREATE INDEX sends_account ON sends (account_id);
CREATE TABLE demo_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_STATUSES = ("active",) * 17 + ("unsubscribed",) * 2 + ("bounced",)
_DOMAINS = ("example.com", "mail.example.org", "example.net", "corp.example", "shop.example")
_WORDS = ("spring", "sale", "winter", "news", "weekly", "digest", "launch", "update", "offer")
_EPOCH = 1_700_000_000


_TABLES = ("accounts", "lists", "subscribers", "campaigns", "sends", "demo_meta")


class NotTheDemosDatabase(Exception):
    """The database holds tables of the same names that the demo did not create."""


def _existing_tables(db: Database) -> set[str]:
    if db.kind == "sqlite":
        rows = db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = db.fetchall("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {str(r[0]) for r in rows} & set(_TABLES)


def is_seeded(db: Database) -> bool:
    """True when ``db`` holds this version's complete data."""
    if "demo_meta" not in _existing_tables(db):
        return False
    row = db.fetchone("SELECT value FROM demo_meta WHERE key = 'version'")
    return row is not None and row[0] == str(DATA_VERSION)


def ensure(db: Database) -> bool:
    """Create and fill the schema unless it is already there; True if it was built now.

    Tables of an older version of the demo's data are replaced; tables of the same names
    that the demo did not create (no ``demo_meta``) are never touched: that raises
    :class:`NotTheDemosDatabase`, since ``DATABASE_URL`` may well name someone's real data.
    """
    if is_seeded(db):
        return False
    existing = _existing_tables(db)
    if existing and "demo_meta" not in existing:
        raise NotTheDemosDatabase(
            f"the database already has table(s) {', '.join(sorted(existing))} that the demo "
            "did not create; give the demo an empty database"
        )
    tables = _generate(random.Random(DATA_SEED))
    if db.kind == "sqlite":
        _load_sqlite(db, tables)
    else:
        _load_postgresql(db, tables)
    return True


def _generate(rng: random.Random) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {
        k: [] for k in ("accounts", "lists", "subscribers", "campaigns", "sends")
    }
    ids = {k: 0 for k in out}

    def next_id(table: str) -> int:
        ids[table] += 1
        return ids[table]

    # Interleave plans so account ids do not reveal the plan.
    plans = [plan for plan, spec in PLANS.items() for _ in range(spec[0])]
    rng.shuffle(plans)
    for plan in plans:
        _, n_lists, n_subs, n_campaigns, n_batches = PLANS[plan]
        account = next_id("accounts")
        created = _EPOCH + rng.randrange(10**7)
        out["accounts"].append((account, f"{_company(rng)} ({plan})", plan, created))
        lists = [next_id("lists") for _ in range(rng.randint(*n_lists))]
        out["lists"].extend((lid, account, f"{rng.choice(_WORDS)} list {lid}") for lid in lists)
        for _ in range(rng.randint(*n_subs)):
            sid = next_id("subscribers")
            out["subscribers"].append(
                (
                    sid,
                    account,
                    rng.choice(lists),
                    f"user{sid}@{rng.choice(_DOMAINS)}",
                    f"Subscriber {sid}",
                    rng.choice(_STATUSES),
                    created + rng.randrange(10**7),
                )
            )
        for _ in range(rng.randint(*n_campaigns)):
            cid = next_id("campaigns")
            subject = " ".join(rng.choice(_WORDS) for _ in range(4)).capitalize()
            sent_at = created + rng.randrange(10**7)
            out["campaigns"].append((cid, account, rng.choice(lists), subject, "sent", sent_at))
            for batch in range(rng.randint(*n_batches)):
                delivered = rng.randint(50, 1000)
                out["sends"].append(
                    (
                        next_id("sends"),
                        account,
                        cid,
                        batch,
                        delivered,
                        rng.randint(0, delivered // 2),
                        rng.randint(0, delivered // 10),
                        rng.randint(0, delivered // 50),
                        sent_at + 60 * batch,
                    )
                )
    return out


def _company(rng: random.Random) -> str:
    first = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne")
    second = ("Bakery", "Outdoors", "Books", "Labs", "Travel", "Fitness", "Media", "Garden")
    return f"{rng.choice(first)} {rng.choice(second)}"


def _statements() -> Iterator[str]:
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            yield statement.strip()


def _load_sqlite(db: Database, tables: dict[str, list[tuple[Any, ...]]]) -> None:
    conn = db.connection()
    conn.execute("BEGIN")
    for table in _TABLES:  # an older version of the demo's own data (see ensure)
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    for statement in _statements():
        conn.execute(statement)
    for table, rows in tables.items():
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    conn.execute("INSERT INTO demo_meta VALUES ('version', ?)", (str(DATA_VERSION),))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")


def _load_postgresql(db: Database, tables: dict[str, list[tuple[Any, ...]]]) -> None:
    conn = db.connection()
    with conn.transaction():
        for table in _TABLES:  # an older version of the demo's own data (see ensure)
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in _statements():
            conn.execute(statement)
        with conn.cursor() as cur:
            for table, rows in tables.items():
                with cur.copy(f"COPY {table} FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        conn.execute("INSERT INTO demo_meta VALUES ('version', %s)", (str(DATA_VERSION),))
    # VACUUM as well: freshly copied tables otherwise draw an insert-triggered autovacuum
    # within the minute, which would compete with the anecdote and the load, and change
    # the query plans (visibility map) partway through the story.
    conn.execute("VACUUM ANALYZE")
