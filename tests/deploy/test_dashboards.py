"""The dashboards and alert rules, structurally: every panel has a title, a unit and a
query on the datasource variable; every variable a query uses is defined; every metric a
query reads is in docs/metrics.md."""

from __future__ import annotations

import pytest

from tests.deploy.catalog import read_catalog
from tests.deploy.dashboards import (
    BUILTINS,
    DASHBOARDS,
    VARIABLE,
    alert_rules,
    load_dashboard,
    metric_names,
    panel_queries,
    panels,
    variables,
)

EXPECTED_DASHBOARDS = {"overview", "queue", "providers", "spend"}
EXPECTED_ALERTS = {
    "SwitchboardHighErrorRate",
    "SwitchboardLatencySLOFastBurn",
    "SwitchboardLatencySLOSlowBurn",
    "SwitchboardQueueLagGrowing",
    "SwitchboardNoLiveWorkers",
    "SwitchboardDeadLetters",
    "SwitchboardDeploymentCooledDownLong",
    "SwitchboardLedgerBacklog",
    "SwitchboardSoftBudgetCrossed",
    "SwitchboardCallbackBacklog",
    "SwitchboardCallbackEventsDropped",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_the_three_dashboards_are_provisioned() -> None:
    assert {path.stem for path in DASHBOARDS} == EXPECTED_DASHBOARDS
    uids = [load_dashboard(path)["uid"] for path in DASHBOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_has_a_title_unit_and_query_on_the_datasource_variable(path: object) -> None:
    dashboard = load_dashboard(path)  # type: ignore[arg-type]
    shown = panels(dashboard)
    assert shown
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in shown:
        title = panel.get("title")
        assert title, f"a panel of {dashboard['title']} has no title"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        assert panel["datasource"] == DATASOURCE, title
        assert panel["targets"], f"{title}: no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{title}: empty query"
            assert target["datasource"] == DATASOURCE, title
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, title


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_variable_resolves(path: object) -> None:
    dashboard = load_dashboard(path)  # type: ignore[arg-type]
    defined = variables(dashboard)
    source = defined.get("datasource")
    assert source is not None and source["type"] == "datasource"
    assert source["query"] == "prometheus"
    for name, variable in defined.items():
        if variable["type"] != "query":
            continue
        assert variable["datasource"] == DATASOURCE, name
        assert variable["query"]["query"].startswith("label_values("), name
        # A variable may use the ones defined before it, never an unknown one.
        for match in VARIABLE.finditer(variable["query"]["query"]):
            used = match.group(1) or match.group(2)
            assert used in defined and used != name, f"{name} uses undefined ${used}"
    for panel in panels(dashboard):
        for target in panel["targets"]:
            for match in VARIABLE.finditer(target["expr"]):
                used = match.group(1) or match.group(2)
                assert used in defined or used in BUILTINS, f"{panel['title']}: ${used}"


def test_dashboards_and_alerts_read_only_catalogued_metrics() -> None:
    catalog = read_catalog()
    exprs = [query.expr for query in panel_queries()] + list(alert_rules().values())
    for expr in exprs:
        for name in metric_names(expr):
            listed = name in catalog or f"`{name}`" in catalog["process_*"].meaning
            assert listed, f"{name} (in `{expr}`) is not in docs/metrics.md"


def test_the_alert_rules_cover_the_failure_modes() -> None:
    assert set(alert_rules()) == EXPECTED_ALERTS


def test_the_queue_dashboard_shows_the_batch_panels_issue_20_names() -> None:
    """Batches in progress, lines per second, the batch lane's depth (and the workers'
    pace); the live Prometheus test (test_prometheus.py) checks each returns data."""
    queue = next(path for path in DASHBOARDS if path.stem == "queue")
    queries = {panel["title"]: panel["targets"] for panel in panels(load_dashboard(queue))}
    wanted = {
        "Batches in progress": "switchboard_batches_running",
        "Batch lines per second": "switchboard_batch_lines_total",
        "Batch lane depth": "switchboard_worker_batch_lines_allowed",
    }
    for title, metric in wanted.items():
        assert title in queries, title
        assert any(metric in target["expr"] for target in queries[title]), title
