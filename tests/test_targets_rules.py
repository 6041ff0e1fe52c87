"""The alerting rules know about failed probe targets (promtool test rules).

T-5 holds on its endpoint (share 0.4 >= 0.35) but one of its targets failed: the
"confirmed" alert must stay silent (the share misses the failed target's code) and
``HypoprobeProbeTargetFailed`` fires instead. T-6 is the same without the failure.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypoprobe import _rules
from test_rules import promtool, write_rules


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": values}


def test_a_failed_target_fires_its_alert_and_silences_confirmed(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, "--alerts", "--min-share", "T-5=0.35", "--min-share", "T-6=0.35")
    series = []
    for hid in ("T-5", "T-6"):
        labels = {"hypothesis": hid, "endpoint": "GET /a", "slow": "false", "instance": "a"}
        series.append(_series("hypoprobe_hypothesis_probe_seconds_total", labels, "0+4x200"))
        series.append(_series("hypoprobe_hypothesis_endpoint_seconds_total", labels, "0+10x200"))
        series.append(_series("hypoprobe_hypothesis_requests_total", labels, "0+10x200"))
    failed = {
        "hypothesis": "T-5",
        "target": "app.modles:User.feed",
        "kind": "config",
        "state": "failed",
        "reason": "no module named 'app.modles'",
        "instance": "a",
    }
    series.append(_series("hypoprobe_probe_target_state", failed, "2x200"))
    alert = _rules.alerting_rules([], 100)[-1]
    assert alert["alert"] == "HypoprobeProbeTargetFailed"
    target_labels = {k: failed[k] for k in ("hypothesis", "target", "reason")}
    tests = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "HypoprobeProbeTargetFailed",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", **target_labels},
                                "exp_annotations": {
                                    "summary": "Probe target app.modles:User.feed of T-5 "
                                    "failed: no module named 'app.modles'",
                                    "description": alert["annotations"]["description"],
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "90m",
                        "alertname": "HypoprobeHypothesisConfirmed",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "info",
                                    "hypothesis": "T-6",
                                    "endpoint": "GET /a",
                                },
                                "exp_annotations": {
                                    "summary": "T-6 holds on GET /a: share 40% >= 35% for 1h",
                                    "description": _rules.alerting_rules(
                                        [_rules.Threshold("T-6", 0.35)], 100
                                    )[1]["annotations"]["description"],
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "targets.rules.test.yml"
    test_file.write_text(json.dumps(tests, indent=2))
    done = promtool("test", "rules", test_file.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
