"""deploy/: every file parses, the Kubernetes objects fit together, and every PromQL query of the
Grafana dashboard and the KEDA trigger names a series a running gateway really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from comfy_gateway.settings import Settings
from observability.helpers import UPSCALE, run_job, wait_status
from support.gateway import gateway_settings, hosts_of, running_gateway

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERIES = re.compile(r"\bcomfy_gateway_[a-z_]+\b")
SETTING_NAMES = {name.upper() for name in Settings.model_fields}


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc is not None]


def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in documents(f"k8s/{path.name}"):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), (path.name, doc)
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, key
            objects[key] = doc
    return objects


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "comfy-gateway.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def keda_queries() -> list[str]:
    scaled = k8s_objects()[("ScaledObject", "comfyui")]
    return [trigger["metadata"]["query"] for trigger in scaled["spec"]["triggers"]]


def test_the_gateway_deployment_is_probed_on_live_and_ready_and_runs_unprivileged():
    objects = k8s_objects()
    deployment = objects[("Deployment", "comfy-gateway")]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    port = container["ports"][0]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == port["name"]
    # The Service selects the gateway's pods; the ConfigMap sets only variables the gateway knows.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = objects[("Service", "comfy-gateway")]
    assert service["spec"]["selector"].items() <= labels.items()
    config = objects[("ConfigMap", "comfy-gateway")]["data"]
    unknown = {key for key in config if key not in SETTING_NAMES and not key.startswith("OTEL_")}
    assert not unknown
    assert config["REDIS_URL"].startswith(f"redis://{objects[('Service', 'comfy-gateway-redis')]['metadata']['name']}:")


def test_keda_scales_the_comfyui_servers_the_gateway_lists():
    objects = k8s_objects()
    scaled = objects[("ScaledObject", "comfyui")]
    target = scaled["spec"]["scaleTargetRef"]
    servers = objects[(target["kind"], target["name"])]
    headless = objects[("Service", servers["spec"]["serviceName"])]
    assert headless["spec"]["clusterIP"] == "None"
    # Every pod KEDA may create has its host:port in COMFYUI_HOSTS.
    hosts = objects[("ConfigMap", "comfy-gateway")]["data"]["COMFYUI_HOSTS"].split(",")
    port = headless["spec"]["ports"][0]["port"]
    expected = [f"{target['name']}-{n}.{headless['metadata']['name']}:{port}"
                for n in range(scaled["spec"]["maxReplicaCount"])]
    assert [h.strip() for h in hosts] == expected
    assert all(t["type"] == "prometheus" and SERIES.search(t["metadata"]["query"]) for t in scaled["spec"]["triggers"])


def test_compose_runs_the_gateway_on_redis_in_front_of_the_fake_servers():
    [compose] = documents("compose.yaml")
    services = compose["services"]
    gateway = services["gateway"]
    env = gateway["environment"]
    assert not {key for key in env if key not in SETTING_NAMES}
    assert env["JOB_STORE"] == "redis" and env["REDIS_URL"].startswith("redis://redis:")
    for host in env["COMFYUI_HOSTS"].split(","):
        name, port = host.split(":")
        assert services[name]["command"][:3] == ["python", "-m", "fake_comfyui"]
        assert services[name]["command"][services[name]["command"].index("--port") + 1] == port
    assert gateway["build"]["dockerfile"] == "deploy/Dockerfile"
    assert "/ready" in " ".join(gateway["healthcheck"]["test"])


async def test_every_dashboard_and_keda_query_names_a_series_the_gateway_exports(fake_servers, tmp_path):
    fakes = await fake_servers(2)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes), max_jobs_per_instance=1)) as gw:
        await run_job(gw, UPSCALE)
        for fake in fakes:
            fake.fail_next(1, message="boom")
        await run_job(gw, UPSCALE, "failed")
        await fakes[1].stop()  # a failed health probe counts as an upstream error
        await wait_status(gw, "/health", 503, "degraded")
        exported = {line.split("{")[0].split(" ")[0] for line in (await gw.client.get("/metrics")).text.splitlines()
                    if line and not line.startswith("#")}

    queries = dashboard_queries() + keda_queries()
    assert len(queries) >= 15
    named = {name for query in queries for name in SERIES.findall(query)}
    assert all(SERIES.search(query) for query in queries)
    assert named - exported == set()
    # Queries read the series the issue asks for: throughput, latency, queue, servers, breakers, errors.
    assert {"comfy_gateway_jobs_total", "comfy_gateway_job_duration_seconds_bucket",
            "comfy_gateway_queue_depth_by_workflow", "comfy_gateway_jobs_running",
            "comfy_gateway_circuit_breaker_state", "comfy_gateway_upstream_errors_total"} <= named
