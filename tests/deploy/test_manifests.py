"""deploy/: the compose stack, the image and the Kubernetes manifests parse, agree with each
other and with the code (stream names, drain timeout, probe paths), and pass schema checks
where a validator is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.config.loader import Config, load_config_text
from tests.deploy.dashboards import DEPLOY
from workers import redis_streams
from workers.redis_streams import Keys

K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
ENV = {"OPENAI_API_KEY": "sk-test"}
PRESTOP_S = 5


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> manifest, over every file in deploy/k8s/."""
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in documents(path):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def k8s_config() -> Config:
    config_map = manifests()[("ConfigMap", "switchboard-config")]
    return load_config_text(config_map["data"]["config.yaml"], ENV)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    (only,) = containers
    return only


def selects(selector: dict[str, str], workload: dict[str, Any]) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(key) == value for key, value in selector.items())


def test_every_manifest_parses_and_the_expected_objects_exist() -> None:
    assert set(manifests()) >= {
        ("ConfigMap", "switchboard-config"),
        ("Deployment", "switchboard-front-door"),
        ("Service", "switchboard"),
        ("Deployment", "switchboard-worker"),
        ("ScaledObject", "switchboard-worker"),
        ("PodDisruptionBudget", "switchboard-front-door"),
        ("PodDisruptionBudget", "switchboard-worker"),
        ("StatefulSet", "redis"),
        ("Service", "redis"),
        ("PodMonitor", "switchboard"),
    }


def test_probes_hit_the_health_endpoints_and_shutdown_outlasts_the_drain() -> None:
    found = manifests()
    drain_s = k8s_config().switchboard_settings.drain_timeout_s
    front = found[("Deployment", "switchboard-front-door")]
    front_container = container(front)
    assert front_container["readinessProbe"]["httpGet"]["path"].startswith("/health/readiness")
    assert front_container["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    worker_container = container(found[("Deployment", "switchboard-worker")])
    for probe in ("livenessProbe", "startupProbe"):
        # A worker's metrics port serves /health/liveliness.
        assert worker_container[probe]["httpGet"] == {
            "path": "/health/liveliness",
            "port": "metrics",
        }
    assert front_container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(PRESTOP_S)]
    for name in ("switchboard-front-door", "switchboard-worker"):
        pod = found[("Deployment", name)]["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= drain_s + PRESTOP_S, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        ports = {
            p["name"]: p["containerPort"] for p in container(found[("Deployment", name)])["ports"]
        }
        assert "metrics" in ports, name
        args = container(found[("Deployment", name)])["args"]
        assert f"--metrics-port={ports['metrics']}" in args, name


def test_services_and_budgets_select_the_pods_they_mean() -> None:
    found = manifests()
    front = found[("Deployment", "switchboard-front-door")]
    worker = found[("Deployment", "switchboard-worker")]
    service = found[("Service", "switchboard")]
    assert selects(service["spec"]["selector"], front)
    assert not selects(service["spec"]["selector"], worker)
    port_names = {p["name"] for p in container(front)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    for name, workload in (("switchboard-front-door", front), ("switchboard-worker", worker)):
        budget = found[("PodDisruptionBudget", name)]
        assert selects(budget["spec"]["selector"]["matchLabels"], workload)
    monitor = found[("PodMonitor", "switchboard")]
    for workload in (front, worker):
        assert selects(monitor["spec"]["selector"]["matchLabels"], workload)


def test_keda_scales_the_workers_on_every_lanes_request_stream() -> None:
    found = manifests()
    scaled = found[("ScaledObject", "switchboard-worker")]["spec"]
    assert ("Deployment", scaled["scaleTargetRef"]["name"]) in found
    assert scaled["scaleTargetRef"]["name"] == "switchboard-worker"
    assert scaled["minReplicaCount"] == 0  # scale to zero, documented in k8s/README.md
    settings = k8s_config().switchboard_settings
    keys = Keys(settings.namespace)
    by_stream: dict[str, set[str]] = {}
    for trigger in scaled["triggers"]:
        assert trigger["type"] == "redis-streams"
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == redis_streams.GROUP
        modes = {"lagCount", "pendingEntriesCount"} & set(meta)
        by_stream.setdefault(meta["stream"], set()).update(modes)
        if "lagCount" in meta:
            assert meta["activationLagCount"] == "0"  # what wakes the pool from zero
    assert by_stream == {
        keys.lane(lane): {"lagCount", "pendingEntriesCount"} for lane in settings.lanes
    }


def test_the_compose_stack_wires_every_part() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"redis", "frontdoor", "worker", "prometheus", "grafana"} <= set(services)
    config = load_config_text((DEPLOY / "config.yaml").read_text(encoding="utf-8"), ENV)
    drain_s = config.switchboard_settings.drain_timeout_s
    for name in ("frontdoor", "worker"):
        grace = services[name]["stop_grace_period"]
        assert int(grace.removesuffix("s")) > drain_s, name
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    scraped = {
        sd["names"][0]: sd["port"]
        for job in scrape["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
    }
    # Prometheus scrapes each process's metrics port (no key needed), never the API port.
    metrics_ports = {}
    for name in ("frontdoor", "worker"):
        command = services[name]["command"]
        assert "--metrics-port" in command, name
        metrics_ports[name] = int(command[command.index("--metrics-port") + 1])
    assert scraped == metrics_ports
    assert services["worker"]["environment"]["SWITCHBOARD_HEALTH_URL"].endswith(
        f":{metrics_ports['worker']}/health/liveliness"
    )
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK\s", dockerfile, re.MULTILINE)
    root = DEPLOY.parent
    for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", dockerfile, re.MULTILINE):
        for path in source.split():
            assert (root / path).exists(), f"Dockerfile copies missing {path}"


def test_manifests_match_the_kubernetes_schemas() -> None:
    validator = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (pip)"
    )
    version = validator.latest_version()
    checked = 0
    for (kind, _name), manifest in manifests().items():
        if kind in {"ScaledObject", "PodMonitor"}:
            continue  # custom resources: no schema ships with kubernetes-validate
        validator.validate(manifest, version, strict=True)
        checked += 1
    assert checked >= 8


def test_compose_config_is_accepted_by_docker_compose() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    done = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None
