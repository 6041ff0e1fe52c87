"""Jobs as endpoints: ``job(name)`` on plain functions, and Celery tasks via its signals.

Celery runs in eager mode (``task_always_eager``): the worker's tracer, with its
``task_prerun`` / ``task_postrun`` signals, runs in this process and thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import hypoprobe
from conftest import FakeClock
from hypoprobe.integrations.jobs import instrument_celery, job, job_endpoint, uninstrument_celery
from servers import need_component

try:
    from celery import Celery  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - the test extra installs Celery
    Celery = None

MS = 1_000_000


def _count(name: str) -> int:
    data = hypoprobe.snapshot().endpoint(name)
    return 0 if data is None else data.duration.count


def test_job_decorates_sync_and_async_functions_and_is_a_context_manager(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, name = unique_id(), unique_id("newsletter")
    endpoint = job_endpoint(name)
    assert endpoint == f"job {name}"
    hypoprobe.hypothesis(hid, claim="rendering dominates", endpoint=endpoint, min_share=0.5)

    @hypoprobe.probe(hid, name="render")
    def render() -> None:
        fake_clock.advance(40 * MS)

    @job(name)
    def send(batch: int) -> int:
        render()
        fake_clock.advance(60 * MS)
        return batch

    @job(name)
    async def send_async(batch: int) -> int:
        render()
        return batch

    assert send(3) == 3
    assert send.__name__ == "send"
    assert asyncio.run(send_async(4)) == 4
    with job(name):
        render()

    moments = hypoprobe.snapshot().moments_for(hid, endpoint)
    assert (moments.requests, moments.requests_with_probe) == (3, 3)
    assert moments.probe_seconds == pytest.approx(0.120)
    assert moments.endpoint_seconds == pytest.approx(0.180)


@pytest.fixture
def celery_app() -> Iterator[Any]:
    need_component("celery", Celery is not None, "pip install -e '.[test]'")
    app = Celery("hypoprobe_tests", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    instrument_celery()
    instrument_celery()  # idempotent: one scope per task, not two
    try:
        yield app
    finally:
        uninstrument_celery()


class Boom(Exception):
    pass


def test_celery_tasks_get_one_scope_each_whatever_their_outcome(
    celery_app: Any, unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, tok = unique_id(), unique_id("tasks")
    endpoint = f"job {tok}.rollup"
    hypoprobe.hypothesis(hid, claim="the rollup query dominates", endpoint=endpoint, min_share=0.5)
    raised = Boom("task failed")

    @hypoprobe.probe(hid, name="rollup_query")
    def rollup_query() -> None:
        fake_clock.advance(80 * MS)

    @celery_app.task(name=f"{tok}.rollup")
    def rollup(day: int) -> int:
        rollup_query()
        fake_clock.advance(20 * MS)
        return day

    @celery_app.task(name=f"{tok}.failing")
    def failing() -> None:
        raise raised

    assert rollup.delay(1).get() == 1
    assert rollup.apply(args=(2,)).get() == 2
    with pytest.raises(Boom) as info:
        failing.delay()
    assert info.value is raised

    moments = hypoprobe.snapshot().moments_for(hid, endpoint)
    assert (moments.requests, moments.requests_with_probe) == (2, 2)
    assert moments.probe_seconds == pytest.approx(0.160)
    assert moments.endpoint_seconds == pytest.approx(0.200)
    assert _count(f"job {tok}.failing") == 1
    # Nothing was left open: a later scope in this thread is a request of its own.
    with hypoprobe.endpoint(f"job {tok}.after"):
        pass
    assert _count(f"job {tok}.after") == 1


def test_an_eager_task_inside_a_request_is_part_of_that_request(
    celery_app: Any, unique_id: Callable[..., str]
) -> None:
    tok = unique_id("tasks")

    @celery_app.task(name=f"{tok}.inline")
    def inline() -> str:
        return "done"

    with hypoprobe.endpoint(f"POST /{tok}"):
        assert inline.delay().get() == "done"
    assert _count(f"POST /{tok}") == 1
    assert _count(f"job {tok}.inline") == 0


def test_uninstrumented_celery_opens_no_scopes(
    celery_app: Any, unique_id: Callable[..., str]
) -> None:
    tok = unique_id("tasks")

    @celery_app.task(name=f"{tok}.plain")
    def plain() -> int:
        return 1

    uninstrument_celery()
    assert plain.delay().get() == 1
    assert _count(f"job {tok}.plain") == 0
