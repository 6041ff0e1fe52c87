"""The "probe that did not run" stories, recorded once, read from every source.

One application package (``apps.make_app``), two TOML files loaded the way a server loads
them, and 40 requests of known cost on one endpoint. Five hypotheses:

* ``typo_module``: ``<pkg>.modles:User.followers_count`` — failed when ``<pkg>`` is imported;
* ``typo_attr``: ``<pkg>.models:User.folowers_count`` — failed when the module is imported;
* ``early``: ``<pkg>.models:helper``, which ``<pkg>.views`` took by ``from ... import`` before
  the second file was loaded — attached (late) but never called;
* ``idle``: ``<pkg>.models:User.feed``, attached, on a code path no request takes;
* ``partial``: ``Post.render`` (called every request) and ``unused`` (never) — a verdict,
  with a warning for the silent probe.

:func:`expected` gives, per hypothesis, the verdict and the sentence every format must show.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import hypoprobe
from apps import AppFactory, toml
from conftest import FakeClock
from hypoprobe.model import Snapshot

REQUESTS = 40
DOCS = "docs/integrations.md#early-binding"


@dataclass(frozen=True)
class Story:
    pkg: str
    endpoint: str
    ids: dict[str, str]  # role -> hypothesis id
    files: tuple[Path, Path]

    @property
    def mine(self) -> set[str]:
        return set(self.ids.values())


def setup(
    make_app: AppFactory, clock: FakeClock, unique_id: Callable[[str], str], tmp_path: Path
) -> tuple[Story, Callable[[int], None]]:
    """Load and import as a server does; return the story and ``serve(n)`` (n requests)."""
    pkg = make_app()
    endpoint = unique_id("GET /explore")
    roles = ("typo_module", "typo_attr", "early", "idle", "partial")
    ids = {role: unique_id(role) for role in roles}
    first = tmp_path / "perf.toml"
    first.write_text(
        toml(ids["typo_module"], endpoint, [f"{pkg}.modles:User.followers_count"])
        + toml(ids["typo_attr"], endpoint, [f"{pkg}.models:User.folowers_count"])
        + toml(ids["idle"], endpoint, [f"{pkg}.models:User.feed"])
        + toml(ids["partial"], endpoint, [f"{pkg}.models:Post.render", f"{pkg}.models:unused"])
    )
    hypoprobe.load(first)  # as HYPOPROBE_CONFIG: before the application is imported
    views = importlib.import_module(f"{pkg}.views")  # imports <pkg> and <pkg>.models
    models: Any = importlib.import_module(f"{pkg}.models")  # written by the app factory
    models.CLOCK = clock
    second = tmp_path / "late.toml"
    second.write_text(toml(ids["early"], endpoint, [f"{pkg}.models:helper"]))
    hypoprobe.load(second)  # after views took `helper`: its calls go around the probe

    def serve(n: int) -> None:
        for _ in range(n):
            with hypoprobe.endpoint(endpoint):
                clock.advance_seconds(0.010)
                views.explore(0.001)
                models.Post().render(0.004)
                models.User().followers_count(0.002)

    return Story(pkg, endpoint, ids, (first, second)), serve


def record(
    make_app: AppFactory, clock: FakeClock, unique_id: Callable[[str], str], tmp_path: Path
) -> Story:
    """Set up and serve the 40 requests (targets stay loaded until ``unload``)."""
    story, serve = setup(make_app, clock, unique_id, tmp_path)
    serve(REQUESTS)
    return story


def only(snap: Snapshot, story: Story) -> Snapshot:
    """The snapshot restricted to the story (the test session records much else)."""
    mine = story.mine
    return replace(
        snap,
        hypotheses=tuple(h for h in snap.hypotheses if h.id in mine),
        endpoints=tuple(e for e in snap.endpoints if e.endpoint == story.endpoint),
        probes=tuple(p for p in snap.probes if p.hypothesis in mine),
        requests=tuple(r for r in snap.requests if r.hypothesis in mine),
        moments=tuple(mo for mo in snap.moments if mo.hypothesis in mine),
        exceptions=(),
        outcomes=(),
        unregistered=(),
        slowest=(),
        targets=tuple(t for t in snap.targets if t.hypothesis in mine),
    )


def expected(story: Story) -> dict[str, tuple[str, str | None]]:
    """Per hypothesis id: (verdict, the UNMEASURED sentence or None)."""
    pkg, ep, ids = story.pkg, story.endpoint, story.ids
    none_ran = f"{REQUESTS} requests of {ep}"
    late = f"late: {pkg}.models was imported before the target was patched"
    return {
        ids["typo_module"]: (
            "UNMEASURED",
            f"UNMEASURED: none of {ids['typo_module']}'s probes ran in {none_ran}; target "
            f"{pkg}.modles:User.followers_count failed: no module named '{pkg}.modles'.",
        ),
        ids["typo_attr"]: (
            "UNMEASURED",
            f"UNMEASURED: none of {ids['typo_attr']}'s probes ran in {none_ran}; target "
            f"{pkg}.models:User.folowers_count failed: type User has no attribute "
            "'folowers_count'.",
        ),
        ids["early"]: (
            "UNMEASURED",
            f"UNMEASURED: none of {ids['early']}'s probes ran in {none_ran}; target "
            f"{pkg}.models:helper attached but never called in {REQUESTS} requests ({late}; "
            f"{pkg}.views:bound_helper still call the original: name the function where it "
            f"is called, or load earlier): bound before hypoprobe was loaded? ({DOCS}).",
        ),
        ids["idle"]: (
            "UNMEASURED",
            f"UNMEASURED: none of {ids['idle']}'s probes ran in {none_ran}; target "
            f"{pkg}.models:User.feed attached but never called in {REQUESTS} requests: "
            f"bound before hypoprobe was loaded? ({DOCS}).",
        ),
        ids["partial"]: ("DISPROVED", None),
    }


def partial_warning(story: Story) -> str:
    return (
        f"probe unused never ran in {REQUESTS} requests of {story.endpoint}: the share counts "
        "only the probes that did"
    )
