"""`comfy-gateway status`: the pool at a glance (servers, queue, throughput), once or refreshed."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .http import GatewayClient

HEALTH_STYLE = {"healthy": "bold green", "degraded": "bold yellow", "critical": "bold red"}


async def snapshot(client: GatewayClient) -> dict[str, Any]:
    health, stats, perf, instances = await asyncio.gather(
        client.get_json("/health", allow=frozenset({503})), client.get_json("/api/jobs/stats"),
        client.get_json("/api/metrics/performance"), client.get_json("/api/metrics/instances"))
    return {"health": health, "stats": stats, "performance": perf, "instances": instances["instances"]}


def render(snap: dict[str, Any]) -> Group:
    health, by_status, perf = snap["health"], snap["stats"]["by_status"], snap["performance"]
    status = str(health.get("status"))
    head = Text.assemble(("comfy-gateway ", "bold"), (status, HEALTH_STYLE.get(status, "bold")),
                         f"   queue {by_status.get('pending', 0)} pending, {by_status.get('processing', 0)} running"
                         f"   done {by_status.get('completed', 0)}, failed {by_status.get('failed', 0)}"
                         f"   {perf.get('jobs_per_hour', 0)} jobs/h, p95 {perf.get('p95_processing_time_ms', 0)} ms"
                         f", success {perf.get('success_rate', '')}")
    table = Table(show_edge=False, header_style="bold")
    for column in ("server", "health", "breaker", "running", "jobs", "failed", "avg ms", "busy %"):
        table.add_column(column, justify="left" if column in ("server", "health", "breaker") else "right")
    for name, view in sorted(snap["instances"].items()):
        table.add_row(name, "[green]healthy" if view.get("healthy") else "[red]unhealthy",
                      str(view.get("circuit_breaker", "")), str(view.get("active_jobs", 0)),
                      str(view.get("total_jobs", 0)), str(view.get("failed_jobs", 0)),
                      str(view.get("average_processing_time_ms", "")), str(view.get("utilization_percent", "")))
    return Group(head, table)


async def show(client: GatewayClient, console: Console, watch_s: float | None) -> int:
    """Print the pool once (exit code 0 when healthy) or redraw it every `watch_s` until interrupted."""
    snap = await snapshot(client)
    if watch_s is None:
        console.print(render(snap))
        return 0 if snap["health"].get("status") == "healthy" else 1
    with Live(render(snap), console=console, auto_refresh=False) as live:
        while True:
            await asyncio.sleep(watch_s)
            live.update(render(await snapshot(client)), refresh=True)
