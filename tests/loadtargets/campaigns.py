"""A stand-in for application code a performance team does not own (imported after load)."""

from __future__ import annotations

import asyncio


class CampaignQuery:
    """Query methods of every kind a configuration file can name."""

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id

    def list_for_account(self) -> list[str]:
        """Return the account's campaigns."""
        return [f"campaign-{self.account_id}-{i}" for i in range(3)]

    @staticmethod
    def normalise(name: str) -> str:
        return name.strip().lower()

    @classmethod
    def for_account(cls, account_id: int) -> CampaignQuery:
        return cls(account_id)


def count_subscribers(account_id: int) -> int:
    if account_id < 0:
        raise ValueError("no such account")
    return account_id * 10


async def fetch_remote(account_id: int) -> int:
    await asyncio.sleep(0)
    return account_id + 1
