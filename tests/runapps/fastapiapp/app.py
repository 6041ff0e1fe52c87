"""A FastAPI application that knows nothing about hypoprobe."""

from __future__ import annotations

from fastapi import FastAPI
from slow import connect, price, score

app = FastAPI()
conn = connect()


@app.get("/plans/{plan}")
def plan(plan: int) -> dict[str, int]:
    return {"score": score(plan), "price": price(conn, plan)}
