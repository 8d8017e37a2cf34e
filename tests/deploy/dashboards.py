"""The provisioned Grafana dashboards and Prometheus alert rules, read for tests: every
PromQL query they hold, with Grafana's variables replaced by what a test can evaluate."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import yaml

from tests.deploy.catalog import ROOT

DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
ALERTS = DEPLOY / "prometheus" / "alerts.yml"

# Grafana's built-in variables, as a short test run can evaluate them.
BUILTINS = {"__rate_interval": "30s", "__range": "5m", "__interval": "1s"}
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


class Query(msgspec.Struct, frozen=True):
    dashboard: str
    panel: str
    expr: str


def load_dashboard(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that shows data (rows only group them)."""
    found = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found += panel.get("panels", [])
        else:
            found.append(panel)
    return found


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace `$name` / `${name}` by `values[name]` or a built-in; KeyError if unknown."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return BUILTINS[name] if name in BUILTINS else values[name]

    return VARIABLE.sub(value, expr)


def panel_queries() -> list[Query]:
    queries = []
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        # Query variables default to "All", which the dashboards turn into `.*`.
        values = {name: ".*" for name, v in variables(dashboard).items() if v["type"] == "query"}
        for panel in panels(dashboard):
            for target in panel["targets"]:
                expr = substitute(target["expr"], values)
                queries.append(Query(path.stem, panel["title"], expr))
    return queries


def alert_rules() -> dict[str, str]:
    """Alert name -> expr."""
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return {
        rule["alert"]: rule["expr"]
        for group in document["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


METRIC = re.compile(r"\b((?:switchboard|process)_[a-z_]+)")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def metric_names(expr: str) -> set[str]:
    """Metric names a query reads, histogram series folded to their family."""
    names = set()
    for name in METRIC.findall(expr):
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name.endswith("_seconds" + suffix):
                name = name.removesuffix(suffix)
        names.add(name)
    return names
