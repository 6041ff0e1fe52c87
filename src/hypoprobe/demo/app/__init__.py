"""The campaigns app: a small email-marketing monolith to try hypoprobe on.

Accounts (free, pro, enterprise) have lists of subscribers and send campaigns in batches.
It runs on SQLite by default (built and seeded on first use under a cache directory) or on
PostgreSQL given a ``postgresql://`` URL (psycopg 3). Its slow paths are real SQL, and its
probes tag them with the hypotheses of ``hypotheses.toml`` next to this file.

Example::

    from hypoprobe.demo.app import create_app

    app = create_app()                        # SQLite under ~/.cache/hypoprobe
    app.run(port=8000)                        # then open http://127.0.0.1:8000/

    fixed = create_app(fixes={"batch"})       # the N+1 replaced by one grouped query
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask

import hypoprobe
from hypoprobe.integrations.flask import instrument_app

from . import _queries, _seed, _web
from ._db import Database

__all__ = ["FIXES", "HYPOTHESES", "Database", "create_app", "default_database_url", "set_fixes"]

#: The hypotheses a performance team wrote for this app (hypoprobe's TOML format).
HYPOTHESES = Path(__file__).with_name("hypotheses.toml")
FIXES = _queries.FIXES


def default_database_url() -> str:
    """``DATABASE_URL`` if set, else a SQLite file in the user's cache directory.

    Example::

        default_database_url()  # 'sqlite:////home/me/.cache/hypoprobe/demo-campaigns-v1.sqlite'
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hypoprobe"
    return f"sqlite:///{cache / f'demo-campaigns-v{_seed.DATA_VERSION}.sqlite'}"


def open_database(url: str) -> tuple[Database, bool]:
    """Connect, creating and seeding the data on first use; True if it was built now."""
    db = Database(url)
    if db.kind == "sqlite" and not db.path.exists():
        # Build under a temporary name and rename: a crash or a concurrent first run
        # never leaves a half-filled file behind under the real name.
        db.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=db.path.parent, suffix=".building")
        os.close(fd)
        try:
            building = Database(f"sqlite:///{tmp}")
            _seed.ensure(building)
            building.close()
            os.replace(tmp, db.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return db, True
    return db, _seed.ensure(db)


def set_fixes(app: Flask, fixes: Iterable[str]) -> None:
    """Switch the app's fixes at run time (schema and code path follow at once).

    Example::

        set_fixes(app, {"batch"})  # the campaigns page: one grouped query, not one per campaign
        set_fixes(app, ())         # back to the original, slow code and schema
    """
    chosen = frozenset(fixes)
    unknown = chosen - set(FIXES)
    if unknown:
        raise ValueError(f"unknown fix(es) {sorted(unknown)}; known: {', '.join(FIXES)}")
    _queries.apply_fixes(app.extensions["campaigns_db"], chosen)
    app.config["CAMPAIGNS_FIXES"] = chosen


def create_app(database_url: str | None = None, *, fixes: Iterable[str] = ()) -> Flask:
    """The Flask app on ``database_url`` (default: :func:`default_database_url`).

    Example::

        app = create_app("sqlite:////tmp/campaigns.sqlite", fixes={"index"})
    """
    app = Flask(__name__)
    db, built = open_database(database_url or default_database_url())
    app.extensions["campaigns_db"] = db
    app.config["CAMPAIGNS_BUILT"] = built
    set_fixes(app, fixes)
    _web.register(app)
    # One endpoint scope per request, named by its URL rule; each request's customer is the
    # account it serves, worth the account's monthly fee.
    instrument_app(app, customer=customer_of(db))
    return app


#: What each plan pays per month: the few enterprise accounts are worth the most.
MONTHLY_FEE = {"free": 10.0, "pro": 300.0, "enterprise": 600.0}

_PATH = re.compile(r"^/(accounts|lists|campaigns)/(\d+)(?:/|$)")


def customer_of(db: Database) -> Callable[[dict[str, Any]], tuple[int, float] | None]:
    """The middleware's ``customer=``: the account a request's URL serves, and its fee.

    Example::

        instrument_app(app, customer=customer_of(db))
    """
    if hypoprobe.configure().customer_key is None:
        # One process, one key: enough for the demo (a fleet shares one secret).
        hypoprobe.configure(customer_key=secrets.token_hex(16))
    plan: dict[int, str] = dict(db.fetchall("SELECT id, plan FROM accounts"))
    owner = {
        "accounts": {a: a for a in plan},
        "lists": dict(db.fetchall("SELECT id, account_id FROM lists")),
        "campaigns": dict(db.fetchall("SELECT id, account_id FROM campaigns")),
    }

    def customer(environ: dict[str, Any]) -> tuple[int, float] | None:
        found = _PATH.match(environ.get("PATH_INFO", ""))
        if found is None:
            return None
        account = owner[found[1]].get(int(found[2]))
        if account is None:
            return None
        return account, MONTHLY_FEE.get(plan[account], 0.0)

    return customer
