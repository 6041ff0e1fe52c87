"""``hypoprobe rules``: Prometheus recording (and alerting) rules for every hypothesis.

The recording rules aggregate over the whole fleet (every instance of every job), keyed
by hypothesis and endpoint, so dashboards, alerts and ``hypoprobe report --prometheus``
read one cheap series per question instead of re-aggregating raw counters:

=============================================================  ==============================
record                                                         what
=============================================================  ==============================
``hypothesis_endpoint:hypoprobe_share:ratio_rate5m`` / ``1h``  aggregate share: sum of probe
                                                               time / sum of endpoint time
``hypothesis_endpoint:hypoprobe_slow_share:ratio_rate5m`` /    the same, slow requests only
``1h``                                                         (``slow="true"``)
``hypothesis_endpoint:hypoprobe_requests:rate5m`` / ``1h``     requests per second
``endpoint:hypoprobe_endpoint_duration_seconds:``              endpoint latency percentile
``histogram_quantile_rate5m{quantile="0.5|0.95|0.99"}``
``hypothesis_probe_endpoint:hypoprobe_request_calls:``         probe calls per request
``mean_rate5m``
``hypothesis:hypoprobe_customer_saving_seconds:per_day_rate1h`` probe seconds per day in
/ ``..._customer_value_saving_seconds:...``                    requests naming a customer,
                                                               plain / times its value
``hypothesis:hypoprobe_customers_affected:sum_upper_bound`` /  distinct customers affected:
``max_lower_bound``                                            hosts' gauges, sum / max
=============================================================  ==============================

The latency and calls rules read the classic ``_bucket``/``_sum``/``_count`` series ``or``,
where a server holds only native histograms (hypoprobe's protobuf exposition scraped with
``--enable-feature=native-histograms``), the native series: the same record either way.

With ``--alerts``: ``HypoprobeHypothesisExpired`` (a hypothesis past its expiry still
exports metrics: remove its probes), ``HypoprobeProbeTargetFailed`` (a TOML probe target
failed in some process: the hypothesis reads UNMEASURED) and, for every hypothesis whose
``min_share`` is known (``--import`` the module that declares it, or
``--min-share ID=0.3``),
``HypoprobeHypothesisConfirmed``: the 1 h share held at or above ``min_share`` for an
hour, over enough requests.

Example::

    $ hypoprobe rules --alerts --import myapp.hypotheses > hypoprobe.rules.yml
    $ promtool check rules hypoprobe.rules.yml
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import _metrics as m

__all__: list[str] = []

HELP = "print Prometheus recording (and alerting) rules for hypoprobe's metrics"

EXAMPLES = """examples:
  hypoprobe rules -o hypoprobe.rules.yml
  hypoprobe rules --import myapp.hypotheses --alerts -o hypoprobe.rules.yml
  hypoprobe rules --alerts --min-share PERF-123=0.5 --hypothesis PERF-123
"""

SHARE = "hypothesis_endpoint:hypoprobe_share:ratio_rate{window}"
SLOW_SHARE = "hypothesis_endpoint:hypoprobe_slow_share:ratio_rate{window}"
REQUESTS = "hypothesis_endpoint:hypoprobe_requests:rate{window}"
LATENCY = "endpoint:hypoprobe_endpoint_duration_seconds:histogram_quantile_rate5m"
CALLS = "hypothesis_probe_endpoint:hypoprobe_request_calls:mean_rate5m"
QUANTILES = ("0.5", "0.95", "0.99")
#: Customers (``hypoprobe.customer``): the fleet's saving per day adds exactly (counters);
#: distinct customers do not (per-host gauges): sum is an upper bound, max a lower one.
CUSTOMER_SAVING = "hypothesis:hypoprobe_customer_saving_seconds:per_day_rate1h"
CUSTOMER_VALUE_SAVING = "hypothesis:hypoprobe_customer_value_saving_seconds:per_day_rate1h"
CUSTOMERS_AFFECTED_UPPER = "hypothesis:hypoprobe_customers_affected:sum_upper_bound"
CUSTOMERS_AFFECTED_LOWER = "hypothesis:hypoprobe_customers_affected:max_lower_bound"
WINDOWS = ("5m", "1h")

_PROBE_SECONDS = m.MOMENT_PROBE.name + "_total"
_ENDPOINT_SECONDS = m.MOMENT_ENDPOINT.name + "_total"
_REQUESTS = m.MOMENT_REQUESTS.name + "_total"


@dataclass(frozen=True)
class Threshold:
    """A hypothesis' claim as the alert needs it: its id and ``min_share``."""

    id: str
    min_share: float


def selector(hypotheses: Sequence[str], extra: str = "") -> str:
    """A label selector body restricting to ``hypotheses`` (all when empty)."""
    parts = []
    if hypotheses:
        # Ids are letters, digits, '-', '_' and '.'; only '.' is special to RE2, and the
        # backslash itself must be doubled inside a PromQL string.
        alternatives = "|".join(h.replace(".", "\\\\.") for h in hypotheses)
        parts.append(f'hypothesis=~"{alternatives}"')
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def share_expr(window: str, hypotheses: Sequence[str] = (), slow: bool = False) -> str:
    """Fleet-wide aggregate share over ``window``: Σ probe time / Σ endpoint time."""
    sel = selector(hypotheses, 'slow="true"' if slow else "")
    by = "sum by (hypothesis, endpoint)"
    return (
        f"{by} (rate({_PROBE_SECONDS}{sel}[{window}]))\n"
        f"/\n{by} (rate({_ENDPOINT_SECONDS}{sel}[{window}]))"
    )


def requests_expr(window: str, hypotheses: Sequence[str] = ()) -> str:
    return f"sum by (hypothesis, endpoint) (rate({_REQUESTS}{selector(hypotheses)}[{window}]))"


def latency_expr(quantile: str, endpoints: str = "") -> str:
    """Classic buckets, ``or`` the native histogram where there are no classic series.

    Prometheus scraping hypoprobe's protobuf exposition with native histograms on keeps only
    the native form (2.42), so one rule serves both kinds of server.
    """
    sel = "{" + endpoints + "}" if endpoints else ""
    name = m.ENDPOINT_DURATION.name
    classic = (
        f"histogram_quantile({quantile}, sum by (endpoint, le) (rate({name}_bucket{sel}[5m])))"
    )
    native = f"histogram_quantile({quantile}, sum by (endpoint) (rate({name}{sel}[5m])))"
    return f"{classic}\nor\n{native}"


def calls_expr(hypotheses: Sequence[str] = (), window: str = "5m") -> str:
    """Mean calls per request: classic ``_sum``/``_count``, ``or`` the native histogram's."""
    sel = selector(hypotheses)
    by = "sum by (hypothesis, probe, endpoint)"
    name = m.REQUEST_CALLS.name
    classic = f"{by} (rate({name}_sum{sel}[{window}]))\n/\n{by} (rate({name}_count{sel}[{window}]))"
    native = (
        f"{by} (histogram_sum(rate({name}{sel}[{window}])))\n/\n"
        f"{by} (histogram_count(rate({name}{sel}[{window}])))"
    )
    return f"(\n{classic}\n)\nor\n(\n{native}\n)"


def recording_rules(hypotheses: Sequence[str] = ()) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for window in WINDOWS:
        rules.append(
            {"record": SHARE.format(window=window), "expr": share_expr(window, hypotheses)}
        )
    for window in WINDOWS:
        rules.append(
            {
                "record": SLOW_SHARE.format(window=window),
                "expr": share_expr(window, hypotheses, slow=True),
            }
        )
    for window in WINDOWS:
        rules.append(
            {"record": REQUESTS.format(window=window), "expr": requests_expr(window, hypotheses)}
        )
    for q in QUANTILES:
        rules.append({"record": LATENCY, "expr": latency_expr(q), "labels": {"quantile": q}})
    rules.append({"record": CALLS, "expr": calls_expr(hypotheses)})
    rules += customer_rules(hypotheses)
    return rules


def customer_rules(hypotheses: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Saving per day over requests that named a customer, and bounds on those affected."""
    from .. import _customers_export as cx

    seen = selector(hypotheses, 'kind="seen"')
    affected = selector(hypotheses, 'kind="affected"')
    by = "sum by (hypothesis)"
    return [
        {
            "record": CUSTOMER_SAVING,
            "expr": f"{by} (rate({cx.PROBE}_total{seen}[1h])) * 86400",
        },
        {
            "record": CUSTOMER_VALUE_SAVING,
            "expr": f"{by} (rate({cx.PROBE_VALUE}_total{seen}[1h])) * 86400",
        },
        {"record": CUSTOMERS_AFFECTED_UPPER, "expr": f"{by} ({cx.DISTINCT}{affected})"},
        {
            "record": CUSTOMERS_AFFECTED_LOWER,
            "expr": f"max by (hypothesis) ({cx.DISTINCT}{affected})",
        },
    ]


def alerting_rules(
    thresholds: Iterable[Threshold], min_requests: int, hypotheses: Sequence[str] = ()
) -> list[dict[str, Any]]:
    failed = selector(hypotheses, 'state="failed"')
    rules: list[dict[str, Any]] = [
        {
            "alert": "HypoprobeHypothesisExpired",
            "expr": f"max by (hypothesis) ({m.HYPOTHESIS_EXPIRED.name}{selector(hypotheses)}) == 1",
            "for": "10m",
            "labels": {"severity": "info"},
            "annotations": {
                "summary": "Hypothesis {{ $labels.hypothesis }} is past its expiry",
                "description": "Its probes pass straight through and record nothing; judge "
                "it (hypoprobe report) and remove the probes and the hypothesis.",
            },
        },
    ]
    share = SHARE.format(window="1h")
    requests = REQUESTS.format(window="1h")
    for t in thresholds:
        sel = f'{{hypothesis="{t.id}"}}'
        rules.append(
            {
                "alert": "HypoprobeHypothesisConfirmed",
                "expr": (
                    f"{share}{sel} >= {t.min_share:.6g}\n"
                    f"and on (hypothesis, endpoint)\n"
                    f"{requests}{sel} * 3600 >= {min_requests}\n"
                    # a share that misses a failed target's code confirms nothing
                    f"unless on (hypothesis)\n"
                    f'max by (hypothesis) ({m.PROBE_TARGET.name}{{hypothesis="{t.id}",'
                    f'state="failed"}} > 0)'
                ),
                "for": "1h",
                "labels": {"severity": "info", "hypothesis": t.id},
                "annotations": {
                    "summary": "{{ $labels.hypothesis }} holds on {{ $labels.endpoint }}: "
                    "share {{ $value | humanizePercentage }} >= " + f"{t.min_share:.0%} for 1h",
                    "description": "The probed code's aggregate share of the endpoint's time "
                    "has stayed at or above the claim's min_share for an hour. Confirm with "
                    "`hypoprobe report --prometheus URL --window 1h` (interval and verdict).",
                },
            }
        )
    rules.append(
        {
            "alert": "HypoprobeProbeTargetFailed",
            "expr": f"max by (hypothesis, target, reason) ({m.PROBE_TARGET.name}{failed}) > 0",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Probe target {{ $labels.target }} of {{ $labels.hypothesis }} "
                "failed: {{ $labels.reason }}",
                "description": "The hypothesis cannot be judged (its verdict is UNMEASURED) "
                "until the target is fixed; check it with `hypoprobe check --config FILE "
                "--import APP`.",
            },
        }
    )
    return rules


def rule_groups(
    hypotheses: Sequence[str] = (),
    *,
    alerts: bool = False,
    thresholds: Iterable[Threshold] = (),
    min_requests: int = 100,
) -> dict[str, Any]:
    """The rule file as data: ``{"groups": [...]}`` (see :func:`to_yaml`)."""
    groups: list[dict[str, Any]] = [
        {"name": "hypoprobe.recording", "rules": recording_rules(hypotheses)}
    ]
    if alerts:
        groups.append(
            {
                "name": "hypoprobe.alerting",
                "rules": alerting_rules(thresholds, min_requests, hypotheses),
            }
        )
    return {"groups": groups}


def to_yaml(value: Any, indent: int = 0) -> str:
    """YAML for nested dicts, lists, strings and numbers (strings as JSON, valid YAML)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(item, indent + 2))
            elif isinstance(item, str) and "\n" in item:
                # A literal block keeps multi-line PromQL readable in the file.
                lines.append(f"{pad}{key}: |-")
                lines.extend(f"{pad}  {line}".rstrip() for line in item.split("\n"))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {body[indent + 2 :]}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(value))
    return "\n".join(lines)


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict | list) and not value:
        return "{}" if isinstance(value, dict) else "[]"
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


# --------------------------------------------------------------------------- command line


def add_hypothesis_arguments(parser: argparse.ArgumentParser) -> None:
    """``--import MODULE`` and ``--hypothesis ID``, shared with ``hypoprobe dashboard``."""
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module first so its hypoprobe.hypothesis(...) declarations are "
        "known (repeatable; the current directory is on the import path)",
    )
    parser.add_argument(
        "--config",
        dest="configs",
        action="append",
        default=[],
        metavar="FILE",
        help="a TOML file of hypotheses (as hypoprobe.load reads it; repeatable)",
    )
    parser.add_argument(
        "--hypothesis",
        dest="hypotheses",
        action="extend",
        nargs="+",
        default=[],
        metavar="ID",
        help="only these hypotheses (--hypothesis A B, or repeated; default: every hypothesis)",
    )


def checked_hypotheses(
    args: argparse.Namespace, extra: Sequence[str] = (), strict: bool = False
) -> list[Any]:
    """The hypotheses ``--import``/``--config`` declare; every ``--hypothesis`` must be one.

    An id nobody declared would produce rules or panels that match nothing, silently: it is
    a usage error (exit 2) — unless nothing was imported at all (``hypoprobe rules
    --hypothesis X`` on its own), where the ids cannot be checked and a warning says so.
    ``extra`` are ids known otherwise (``--min-share ID=SHARE``); ``strict`` refuses unknown
    ids even then (a dashboard needs each hypothesis' declaration).
    """
    from ..errors import UsageError

    known = imported_hypotheses(args.imports, getattr(args, "configs", ()))
    ids = {h.id for h in known} | set(extra)
    unknown = [h for h in dict.fromkeys(args.hypotheses) if h not in ids]
    if unknown and (strict or args.imports or getattr(args, "configs", ()) or extra):
        listed = ", ".join(sorted(ids)) or "none"
        raise UsageError(
            f"unknown hypothesis {', '.join(unknown)}: the imported declarations have "
            f"{listed}; check the id given to --hypothesis"
        )
    if unknown:
        from ..render._common import printable  # ids are quoted as typed: show, not obey

        print(
            f"hypoprobe: warning: --hypothesis {printable(' '.join(unknown))} not checked: "
            "no --import or --config declares any hypothesis",
            file=sys.stderr,
        )
    return known


def imported_hypotheses(imports: Sequence[str], configs: Sequence[str] = ()) -> list[Any]:
    """Import the modules (and load the TOML files); return the registered hypotheses.

    Exit 2 on an import failure or an invalid file.
    """
    from .._core._hypothesis import REGISTRY
    from .._load import load
    from ..errors import ConfigurationError, UsageError
    from ._common import import_modules

    for path in configs:
        try:
            load(path)
        except ConfigurationError as exc:
            raise UsageError(f"--config {path}: {exc}") from None

    if imports and "" not in sys.path:
        sys.path.insert(0, "")
    import_modules(imports)
    return list(REGISTRY.all())


def _min_share(text: str) -> Threshold:
    hid, sep, value = text.partition("=")
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not sep or not hid or not 0 < share <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: use ID=SHARE with 0 < SHARE <= 1")
    return Threshold(hid, share)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ._common import add_output_file_argument

    add_hypothesis_arguments(parser)
    parser.add_argument(
        "--alerts", action="store_true", help="add alerting rules (confirmed, expired)"
    )
    parser.add_argument(
        "--min-share",
        dest="min_shares",
        action="append",
        default=[],
        type=_min_share,
        metavar="ID=SHARE",
        help="with --alerts: the claim's min_share when the hypothesis is not --import'ed",
    )
    parser.add_argument(
        "--min-requests",
        type=int,
        default=100,
        metavar="N",
        help="with --alerts: requests in the last hour needed before confirming (default 100)",
    )
    add_output_file_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ._common import write_output

    known = checked_hypotheses(args, [t.id for t in args.min_shares])
    wanted = set(args.hypotheses)
    thresholds = {h.id: Threshold(h.id, h.min_share) for h in known}
    thresholds.update({t.id: t for t in args.min_shares})
    chosen = [t for hid, t in sorted(thresholds.items()) if not wanted or hid in wanted]
    doc = rule_groups(
        sorted(wanted),
        alerts=args.alerts,
        thresholds=chosen,
        min_requests=args.min_requests,
    )
    header = "# Generated by `hypoprobe rules`; validate with `promtool check rules FILE`.\n"
    write_output(header + to_yaml(doc) + "\n", args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hypoprobe rules`` on its own (the ``hypoprobe`` command routes here too)."""
    parser = argparse.ArgumentParser(prog="hypoprobe rules", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))
