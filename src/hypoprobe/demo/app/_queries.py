"""The app's SQL, and the probes a performance team put on it.

Each probe names the hypothesis (ticket) it gathers evidence for. The slowness is real SQL:
``active_subscriber_count`` reads every subscriber row of the account through an index that
lacks ``status`` (cheap for small accounts, tens of milliseconds for the rare 10^5-subscriber
ones), and the campaigns page calls ``campaign_stats`` once per campaign, each call scanning
all the account's send batches (an N+1 that every busy account pays on every view).
"""

from __future__ import annotations

from dataclasses import dataclass

import hypoprobe

from ._db import Database

__all__ = [
    "FIXES",
    "CampaignStats",
    "active_subscriber_count",
    "apply_fixes",
    "campaign_stats",
    "campaign_stats_batched",
]

#: The fixes the app knows: "index" adds the subscriber index, "batch" replaces the N+1 by
#: one grouped query.
FIXES = ("index", "batch")

_INDEX = "subscribers_account_status"


@dataclass(frozen=True)
class CampaignStats:
    """Delivery statistics of one campaign, summed over its send batches."""

    delivered: int = 0
    opens: int = 0
    clicks: int = 0
    bounces: int = 0

    @property
    def open_rate(self) -> float:
        return self.opens / self.delivered if self.delivered else 0.0

    @property
    def click_rate(self) -> float:
        return self.clicks / self.delivered if self.delivered else 0.0


@hypoprobe.probe("PERF-412", name="active_subscriber_count")
def active_subscriber_count(db: Database, account_id: int) -> int:
    row = db.fetchone(
        "SELECT COUNT(*) FROM subscribers WHERE account_id = ? AND status = 'active'",
        (account_id,),
    )
    return int(row[0]) if row else 0


@hypoprobe.probe("PERF-415", name="campaign_stats")
def campaign_stats(db: Database, account_id: int, campaign_id: int) -> CampaignStats:
    row = db.fetchone(
        "SELECT COALESCE(SUM(delivered), 0), COALESCE(SUM(opens), 0),"
        " COALESCE(SUM(clicks), 0), COALESCE(SUM(bounces), 0)"
        " FROM sends WHERE account_id = ? AND campaign_id = ?",
        (account_id, campaign_id),
    )
    return CampaignStats(*(int(v) for v in row)) if row else CampaignStats()


@hypoprobe.probe("PERF-415", name="campaign_stats_batched")
def campaign_stats_batched(db: Database, account_id: int) -> dict[int, CampaignStats]:
    rows = db.fetchall(
        "SELECT campaign_id, SUM(delivered), SUM(opens), SUM(clicks), SUM(bounces)"
        " FROM sends WHERE account_id = ? GROUP BY campaign_id",
        (account_id,),
    )
    return {int(r[0]): CampaignStats(*(int(v) for v in r[1:])) for r in rows}


def apply_fixes(db: Database, fixes: frozenset[str]) -> None:
    """Make the schema match ``fixes``: the subscriber index exists iff "index" is in it."""
    if "index" in fixes:
        db.execute(f"CREATE INDEX IF NOT EXISTS {_INDEX} ON subscribers (account_id, status)")
    else:
        db.execute(f"DROP INDEX IF EXISTS {_INDEX}")
