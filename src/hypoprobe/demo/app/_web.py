"""The campaigns app's routes: what an email-marketing monolith's pages do per request."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
)
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from . import _queries as q
from ._db import Database

__all__ = ["bp"]

bp = Blueprint("campaigns", __name__)


def _db() -> Database:
    db: Database = current_app.extensions["campaigns_db"]
    return db


def _fixes() -> frozenset[str]:
    fixes: frozenset[str] = current_app.config["CAMPAIGNS_FIXES"]
    return fixes


def _account(db: Database, account_id: int) -> tuple[Any, ...]:
    row = db.fetchone("SELECT id, name, plan FROM accounts WHERE id = ?", (account_id,))
    if row is None:
        abort(404)
    return row


@bp.get("/")
def index() -> str:
    accounts = _db().fetchall("SELECT id, name, plan FROM accounts ORDER BY plan, id")
    return render_template("index.html", accounts=accounts)


@bp.get("/api/accounts")
def api_accounts() -> Response:
    """Every account with its lists and campaigns: what the load generator picks from."""
    db = _db()
    out: dict[int, dict[str, Any]] = {
        r[0]: {"id": r[0], "plan": r[1], "lists": [], "campaigns": []}
        for r in db.fetchall("SELECT id, plan FROM accounts ORDER BY id")
    }
    for lid, aid in db.fetchall("SELECT id, account_id FROM lists ORDER BY id"):
        out[aid]["lists"].append(lid)
    for cid, aid in db.fetchall("SELECT id, account_id FROM campaigns ORDER BY id"):
        out[aid]["campaigns"].append(cid)
    return jsonify(list(out.values()))


@bp.get("/accounts/<int:account_id>/campaigns")
def campaigns(account_id: int) -> str:
    db = _db()
    account = _account(db, account_id)
    active = q.active_subscriber_count(db, account_id)
    rows = db.fetchall(
        "SELECT c.id, c.subject, c.created_at, l.name FROM campaigns c"
        " JOIN lists l ON l.id = c.list_id WHERE c.account_id = ? ORDER BY c.created_at DESC",
        (account_id,),
    )
    if "batch" in _fixes():
        by_id = q.campaign_stats_batched(db, account_id)
        stats = [by_id.get(r[0], q.CampaignStats()) for r in rows]
    else:
        stats = [q.campaign_stats(db, account_id, r[0]) for r in rows]
    return render_template(
        "campaigns.html",
        account=account,
        active=active,
        campaigns=list(zip(rows, stats, strict=True)),
    )


@bp.get("/accounts/<int:account_id>/lists")
def lists(account_id: int) -> str:
    db = _db()
    account = _account(db, account_id)
    rows = db.fetchall(
        "SELECT l.id, l.name, COUNT(c.id) FROM lists l LEFT JOIN campaigns c ON c.list_id = l.id"
        " WHERE l.account_id = ? GROUP BY l.id, l.name ORDER BY l.id",
        (account_id,),
    )
    return render_template("lists.html", account=account, lists=rows)


@bp.get("/campaigns/<int:campaign_id>")
def campaign(campaign_id: int) -> str:
    db = _db()
    row = db.fetchone(
        "SELECT id, account_id, subject, created_at FROM campaigns WHERE id = ?", (campaign_id,)
    )
    if row is None:
        abort(404)
    batches = db.fetchall(
        "SELECT batch, delivered, opens, clicks, bounces, sent_at FROM sends"
        " WHERE account_id = ? AND campaign_id = ? ORDER BY batch",
        (row[1], campaign_id),
    )
    return render_template(
        "campaign.html", campaign=row, account=_account(db, row[1]), batches=batches
    )


@bp.get("/lists/<int:list_id>/export")
def export(list_id: int) -> Response:
    """The list as CSV: a rarely used page whose cost is the query plus Python formatting."""
    db = _db()
    rows = db.fetchall(
        "SELECT email, name, status, created_at FROM subscribers WHERE list_id = ? ORDER BY id",
        (list_id,),
    )
    return Response(format_csv(rows), mimetype="text/csv")


# Probed without a code change: hypotheses.toml names this function in PERF-419's probes.
def format_csv(rows: list[tuple[Any, ...]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(("email", "name", "status", "subscribed_at", "domain"))
    for email, name, status, created in rows:
        writer.writerow((email, name.title(), status.upper(), created, email.split("@")[1]))
    return buf.getvalue()


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition of this process (hypoprobe's series among them).

    The format the scraper asks for: OpenMetrics when its Accept header says so (as
    Prometheus does), which is the only format that carries exemplars (trace ids).
    """
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(REGISTRY), content_type=content_type)


def register(app: Flask) -> None:
    app.register_blueprint(bp)
