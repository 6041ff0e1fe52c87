"""A Flask + SQLAlchemy application that knows nothing about hypoprobe."""

from __future__ import annotations

import os

from flask import Flask
from queries import format_names, load_followers, setup

app = Flask(__name__)
setup()


@app.get("/feed/<int:account>")
def feed(account: int) -> str:
    return format_names(load_followers(account))


@app.get("/pid")
def pid() -> str:
    return str(os.getpid())
