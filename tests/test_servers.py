"""Smoke tests for tests/servers.py: the real servers start, answer and stop."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from servers import (
    PrometheusQueryError,
    ServerError,
    free_port,
    need_component,
    pid_running,
    require_postgres,
    require_prometheus,
    start_postgres,
    start_prometheus,
)


def test_need_component_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    need_component("present", True)  # no-op
    with pytest.raises(pytest.skip.Exception, match="absent is not available"):
        need_component("absent", False)


def test_need_component_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="never a skip"):
        need_component("absent", False)


@pytest.mark.real_server
def test_prometheus_scrapes_a_prometheus_client_exporter(tmp_path: Path) -> None:
    require_prometheus()
    registry = CollectorRegistry()
    events = Counter("hypoprobe_smoke_events", "Smoke-test events.", registry=registry)
    events.inc(3)
    port = free_port()
    httpd, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with start_prometheus(tmp_path, {"smoke": [f"127.0.0.1:{port}"]}) as prom:
            pid = prom.pid
            assert pid is not None
            prom.wait_for_up("smoke")
            events.inc(4)
            # Only a scrape that started after the last increment is sure to carry it.
            prom.wait_for_scrape_after(time.time(), "smoke")
            assert prom.query_value('hypoprobe_smoke_events_total{job="smoke"}') == 7.0
            series = prom.query('hypoprobe_smoke_events_total{job="smoke"}')
            assert series[0]["metric"]["instance"] == f"127.0.0.1:{port}"
            with pytest.raises(PrometheusQueryError, match="bad_data"):
                prom.query("sum(")
        assert not prom.running
        assert not pid_running(pid)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.mark.real_server
def test_prometheus_startup_failure_reports_its_log(tmp_path: Path) -> None:
    require_prometheus()
    with pytest.raises(ServerError, match="no-such-flag"):
        start_prometheus(tmp_path, {}, extra_flags=["--no-such-flag"])


@pytest.mark.real_server
def test_postgres_answers_select_one(tmp_path: Path) -> None:
    require_postgres()
    with start_postgres(tmp_path) as pg:
        pid = pg.pid
        assert pid is not None
        assert pg.dsn == f"postgresql://postgres@127.0.0.1:{pg.port}/hypoprobe_test"
        assert pg.psql("select 1") == "1"
        # psycopg is optional (not in the [test] extra): exercise it when installed, but do
        # not skip without it, because the psql check above already covers the server.
        if importlib.util.find_spec("psycopg") is not None:
            import psycopg

            with psycopg.connect(pg.dsn, connect_timeout=10) as conn:
                row = conn.execute("select 1").fetchone()
            assert row == (1,)
    assert not pid_running(pid)
    assert not pg.base_dir.exists()
