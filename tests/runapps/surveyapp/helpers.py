"""Formatting for the survey app: a slow function for a survey of functions to find."""

from __future__ import annotations

import time


def render(names: list[str]) -> str:
    time.sleep(0.01)  # the slow formatting a survey of this module should name
    return ",".join(names)
