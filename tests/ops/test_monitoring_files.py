"""The monitoring that ships with the service, checked: `deploy/prometheus/alerts.yml` is valid
rule syntax, and every metric, label and label value that an alert or a dashboard panel names is
one the real web and worker processes export (scraped from a running `cpn-sync dev`)."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cpn_sync.fake_clerk import DEFAULT_KEY
from cpn_sync.local import free_port
from tests.ops.promql import DURATION, PromQLError, parse
from tests.ops.test_dev_stack import DevRun, another_terminal, run_dir
from tests.services import ROOT

__all__ = ["run_dir"]

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "cpn-sync.json"
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
# Series Prometheus itself adds to every target: `up{job, instance}`.
PROMETHEUS_SERIES = {"up": [{"job": "cpn-sync-web", "instance": ""}]}

Exported = dict[str, list[dict[str, str]]]


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert and every dashboard target."""
    found = [(f"alert {rule['alert']}", rule["expr"]) for rule in rules()]
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        found += [
            (f"panel {panel['title']!r} {target['refId']}", target["expr"])
            for target in panel["targets"]
        ]
    return found


def test_the_rules_file_is_prometheus_rule_syntax() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names))
    alerts = [rule["alert"] for rule in rules()]
    assert len(alerts) == len(set(alerts)), "alert names must be unique"
    for rule in rules():
        assert set(rule) <= RULE_KEYS, rule
        assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", rule["alert"]), rule["alert"]
        assert isinstance(rule["expr"], str)
        assert rule["expr"].strip()
        parse(rule["expr"])
        assert DURATION.match(str(rule.get("for", "0s"))), rule
        for mapping in (rule.get("labels", {}), rule["annotations"]):
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())
            assert all(v.count("{{") == v.count("}}") for v in mapping.values())
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_the_dashboard_is_grafana_json_with_one_query_per_target() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "cpn-sync"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            parse(target["expr"])


@pytest.mark.parametrize(
    "expr",
    ["rat(cpn_queue_messages[5m])", "cpn_queue_messages{queue=webhooks}", "sum(x", "x[5]"],
)
def test_the_checker_refuses_what_prometheus_refuses(expr: str) -> None:
    with pytest.raises(PromQLError):
        parse(expr)


def problems_against(exported: Exported) -> list[str]:
    """What every alert and panel names that the scrape does not hold."""
    problems = []
    for where, expr in expressions():
        parsed = parse(expr)
        labels_of_expr: set[str] = set()
        for selector in parsed.selectors:
            series = exported.get(selector.metric)
            if series is None:
                problems.append(f"{where}: {selector.metric} is exported by no process")
                continue
            labels = {name for labels in series for name in labels}
            labels_of_expr |= labels
            for label, operator, value in selector.matchers:
                values = {labels[label] for labels in series if label in labels}
                if label not in labels:
                    problems.append(f"{where}: {selector.metric} has no label {label}")
                elif operator == "=" and value not in values:
                    problems.append(f"{where}: {selector.metric}{{{label}}} is never {value!r}")
                elif operator == "=~" and not any(re.fullmatch(value, v) for v in values):
                    problems.append(f"{where}: {selector.metric}{{{label}}} never matches {value}")
        for label in parsed.grouping_labels - labels_of_expr:
            problems.append(f"{where}: groups by {label}, a label none of its metrics has")
    return problems


def scrape(url: str, job: str) -> Exported:
    """The series as Prometheus stores them from the target `job`: it adds the target's `job`
    and `instance`, and keeps a series' own `job` label as `exported_job`."""
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    exported: Exported = defaultdict(list)
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = dict(sample.labels)
            if "job" in labels:
                labels["exported_job"] = labels.pop("job")
            exported[sample.name].append(labels | {"job": job, "instance": url})
    return exported


def fake_url(output: str) -> str:
    found = re.search(r"^fake Clerk API: (http://\S+) ", output, re.MULTILINE)
    assert found, output
    return found.group(1)


def test_a_misnamed_metric_or_label_is_found() -> None:
    """The check below can fail: against a scrape lacking one name, label or value."""
    exported: Exported = {"cpn_worker_tasks_total": [{"task": "t", "outcome": "succeeded"}]}

    found = problems_against(exported)

    assert "alert CpnTasksFailing: cpn_worker_tasks_total{outcome} is never 'failed'" in found
    assert "alert CpnQueueNotConsumed: cpn_canary_age_seconds is exported by no process" in found


@pytest.mark.slow
def test_every_metric_and_label_named_is_exported_by_the_real_processes(run_dir: Path) -> None:
    worker_port = free_port()
    dev = DevRun(
        run_dir / "data", run_dir / "dev.log", "--fake-clerk", "30",
        WORKER_METRICS_PORT=str(worker_port),
    )  # fmt: skip
    try:
        dev.wait_until_ready()
        # Every Clerk job once: the backfill in the stack's worker (its API requests counted
        # there), the recent sync and the reconcile here (their results read by the web).
        enqueued = another_terminal(dev.data_dir, "clerk", "backfill", "--enqueue")
        assert enqueued.returncode == 0, enqueued.stdout + enqueued.stderr
        fake_clerk = {"CLERK_SECRET_KEY": DEFAULT_KEY, "CLERK_API_URL": fake_url(dev.output)}
        for job in ("sync-recent", "reconcile"):
            ran = another_terminal(dev.data_dir, "clerk", job, **fake_clerk)
            assert ran.returncode == 0, ran.stdout + ran.stderr
        sent = another_terminal(dev.data_dir, "send", "user.created", "--wait")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        # A refused signature: the rejection counter's `reason` series exists from then on.
        refused = another_terminal(
            dev.data_dir, "send", "user.created", "--secret", "whsec_d3Jvbmctc2VjcmV0"
        )
        assert refused.returncode == 1
        # The gauges read from the database and the broker fill in at a scrape's refresh.
        deadline = time.monotonic() + 30
        while True:
            exported: Exported = dict(PROMETHEUS_SERIES)
            exported |= scrape(f"http://127.0.0.1:{dev.port}/metrics", "cpn-sync-web")
            exported |= scrape(f"http://127.0.0.1:{worker_port}/metrics", "cpn-sync-worker")
            if not problems_against(exported) or time.monotonic() > deadline:
                break
            time.sleep(1)
        dev.ctrl_c()
    finally:
        dev.kill()

    assert "cpn_worker_tasks_total" in exported  # the worker's port was scraped
    assert "cpn_webhook_events_accepted_total" in exported  # and the web's
    assert problems_against(exported) == []
