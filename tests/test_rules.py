"""``hypoprobe rules``: valid for promtool, and right on synthetic series (promtool test rules).

The synthetic fleet: two instances of one job, per minute (counters in seconds):

=========  =====  ==========  ========  ==========  ========  ==========
instance   slow   probe s     endpt s   requests    calls     calls count
=========  =====  ==========  ========  ==========  ========  ==========
a          false  +1          +4        +10         +30       +10
b          false  +2          +4        +10
a          true   +1          +2        +2
=========  =====  ==========  ========  ==========  ========  ==========

so the fleet-wide share is (1+2+1)/(4+4+2) = 0.4, among slow requests 1/2 = 0.5, requests
22 per minute, 3 calls per request. A second hypothesis (T-3) has share 0.25 < its 0.5.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from hypoprobe._cli import rules as _rules
from hypoprobe.cli import main
from servers import require_promtool


def write_rules(tmp_path: Path, *args: str) -> Path:
    path = tmp_path / "hypoprobe.rules.yml"
    assert main(["rules", "-o", str(path), *args]) == 0
    return path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_promtool(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_generated_rules_pass_promtool_check(tmp_path: Path) -> None:
    path = write_rules(tmp_path, "--alerts", "--min-share", "PERF-1=0.3")
    done = promtool("check", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # 10 recording rules, the expiry alert, and a confirmed-alert per hypothesis with a known
    # min_share: PERF-1 here, plus whatever other tests registered in this process.
    found = re.search(r"SUCCESS: (\d+) rules found", done.stdout)
    assert found is not None, done.stdout
    assert int(found.group(1)) >= 12
    assert "PERF-1" in path.read_text()


def test_hypothesis_filter_escapes_dots_for_promql(tmp_path: Path) -> None:
    path = write_rules(tmp_path, "--hypothesis", "PERF.7", "--hypothesis", "OPS-2", "PERF.7")
    text = path.read_text()
    assert 'hypothesis=~"OPS-2|PERF\\\\.7"' in text
    done = promtool("check", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_without_alerts_have_one_group() -> None:
    doc = _rules.rule_groups()
    assert [g["name"] for g in doc["groups"]] == ["hypoprobe.recording"]
    records = [r["record"] for r in doc["groups"][0]["rules"]]
    assert records.count(_rules.LATENCY) == 3
    assert len(records) == 14
    assert records[-4:] == [
        _rules.CUSTOMER_SAVING,
        _rules.CUSTOMER_VALUE_SAVING,
        _rules.CUSTOMERS_AFFECTED_UPPER,
        _rules.CUSTOMERS_AFFECTED_LOWER,
    ]


def _series(name: str, labels: dict[str, str], per_minute: float) -> dict[str, str]:
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": f"0+{per_minute:g}x200"}


def _fleet() -> list[dict[str, str]]:
    out = []
    rows = [
        ("T-1", "a", "false", 1, 4, 10),
        ("T-1", "b", "false", 2, 4, 10),
        ("T-1", "a", "true", 1, 2, 2),
        ("T-3", "a", "false", 1, 4, 10),
    ]
    for hid, inst, slow, probe, endpoint, requests in rows:
        labels = {"hypothesis": hid, "endpoint": "GET /a", "slow": slow, "instance": inst}
        out.append(_series("hypoprobe_hypothesis_probe_seconds_total", labels, probe))
        out.append(_series("hypoprobe_hypothesis_endpoint_seconds_total", labels, endpoint))
        out.append(_series("hypoprobe_hypothesis_requests_total", labels, requests))
    probe_labels = {"hypothesis": "T-1", "probe": "q", "endpoint": "GET /a", "instance": "a"}
    out.append(_series("hypoprobe_request_calls_sum", probe_labels, 30))
    out.append(_series("hypoprobe_request_calls_count", probe_labels, 10))
    # endpoint latency: 5/min at <= 0.1 s, 5/min in (0.1, 0.5], none above
    for le, n in (("0.1", 5), ("0.5", 10), ("+Inf", 10)):
        out.append(
            _series(
                "hypoprobe_endpoint_duration_seconds_bucket",
                {"endpoint": "GET /a", "le": le, "instance": "a"},
                n,
            )
        )
    out.append({"series": 'hypoprobe_hypothesis_expired{hypothesis="T-2"}', "values": "1x200"})
    out.append({"series": 'hypoprobe_hypothesis_expired{hypothesis="T-1"}', "values": "0x200"})
    return out


def _sample(labels: dict[str, str], value: float) -> dict[str, object]:
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"labels": "{" + body + "}", "value": value}


def test_recording_and_alerting_rules_on_synthetic_series(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, "--alerts", "--min-share", "T-1=0.35", "--min-share", "T-3=0.5")
    he = {"endpoint": "GET /a", "hypothesis": "T-1"}
    he3 = {"endpoint": "GET /a", "hypothesis": "T-3"}
    expr_tests = [
        {
            # rounded: promtool compares floats exactly, and 4/60 / (10/60) is not 0.4
            "expr": "round(hypothesis_endpoint:hypoprobe_share:ratio_rate5m, 0.001)",
            "eval_time": "30m",
            "exp_samples": [_sample(he, 0.4), _sample(he3, 0.25)],
        },
        {
            "expr": "round(hypothesis_endpoint:hypoprobe_share:ratio_rate1h"
            '{hypothesis="T-1"}, 0.001)',
            "eval_time": "90m",
            "exp_samples": [_sample(he, 0.4)],
        },
        {
            "expr": 'hypothesis_endpoint:hypoprobe_slow_share:ratio_rate5m{hypothesis="T-1"}',
            "eval_time": "30m",
            "exp_samples": [
                _sample(
                    {"__name__": "hypothesis_endpoint:hypoprobe_slow_share:ratio_rate5m", **he},
                    0.5,
                )
            ],
        },
        {
            "expr": 'hypothesis_endpoint:hypoprobe_requests:rate5m{hypothesis="T-1"} * 60',
            "eval_time": "30m",
            "exp_samples": [_sample(he, 22)],
        },
        {
            "expr": "round(hypothesis_probe_endpoint:hypoprobe_request_calls:mean_rate5m, 0.001)",
            "eval_time": "30m",
            "exp_samples": [
                _sample(
                    {
                        "endpoint": "GET /a",
                        "hypothesis": "T-1",
                        "probe": "q",
                    },
                    3,
                )
            ],
        },
        {
            # half the requests are at or below 0.1 s: the median is that bucket's bound
            "expr": f'{_rules.LATENCY}{{quantile="0.5"}}',
            "eval_time": "30m",
            "exp_samples": [
                _sample({"__name__": _rules.LATENCY, "endpoint": "GET /a", "quantile": "0.5"}, 0.1)
            ],
        },
        {
            # p95 interpolates linearly inside (0.1, 0.5]: 0.1 + 0.4 * (9.5 - 5) / 5 = 0.46
            "expr": f'round({_rules.LATENCY}{{quantile="0.95"}}, 0.001)',
            "eval_time": "30m",
            "exp_samples": [_sample({"endpoint": "GET /a", "quantile": "0.95"}, 0.46)],
        },
    ]
    confirmed_annotations = {
        "summary": "T-1 holds on GET /a: share 40% >= 35% for 1h",
        "description": _rules.alerting_rules([_rules.Threshold("T-1", 0.35)], 100)[1][
            "annotations"
        ]["description"],
    }
    expired = _rules.alerting_rules([], 100)[0]["annotations"]
    expired_annotations = {"summary": "Hypothesis T-2 is past its expiry", **expired}
    expired_annotations["summary"] = "Hypothesis T-2 is past its expiry"
    alert_tests = [
        {"eval_time": "30m", "alertname": "HypoprobeHypothesisConfirmed", "exp_alerts": []},
        {
            "eval_time": "90m",
            "alertname": "HypoprobeHypothesisConfirmed",
            "exp_alerts": [
                {
                    "exp_labels": {"severity": "info", **he},
                    "exp_annotations": confirmed_annotations,
                }
            ],
        },
        {"eval_time": "5m", "alertname": "HypoprobeHypothesisExpired", "exp_alerts": []},
        {
            "eval_time": "15m",
            "alertname": "HypoprobeHypothesisExpired",
            "exp_alerts": [
                {
                    "exp_labels": {"severity": "info", "hypothesis": "T-2"},
                    "exp_annotations": expired_annotations,
                }
            ],
        },
    ]
    tests = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": _fleet(),
                "promql_expr_test": expr_tests,
                "alert_rule_test": alert_tests,
            }
        ],
    }
    test_file = tmp_path / "hypoprobe.rules.test.yml"
    test_file.write_text(json.dumps(tests, indent=2))  # JSON is valid YAML
    done = promtool("test", "rules", test_file.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
