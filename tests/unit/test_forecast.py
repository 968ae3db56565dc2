"""The forecast places the jobs ahead exactly as looking at every server would, only faster."""

from __future__ import annotations

import random

import pytest

from comfy_gateway.dispatch.forecast import Forecast

WORKFLOWS = {"upscale": frozenset({"4x.pth"}), "rembg": frozenset({"rembg"}), "crop": frozenset()}


def every_server(free_at, warm, servers, expected, least_loaded, jobs):
    """Each job looked at on every capable server, in the servers' order, the strictly better kept."""
    free_at, warm, ends = dict(free_at), dict(warm), []
    for workflow, capable in jobs:
        keys = WORKFLOWS[workflow]
        best = None
        for name in (n for n in servers if n in capable):
            end = free_at[name] + expected(workflow, name, bool(keys) and not keys <= warm[name])
            rank = free_at[name] if least_loaded else end
            if best is None or rank < best[0]:
                best = (rank, end, name)
        if best is None:
            ends.append(None)
            continue
        _, end, name = best
        free_at[name], warm[name] = end, keys
        ends.append(end)
    return ends


@pytest.mark.parametrize("least_loaded", [False, True])
@pytest.mark.parametrize("seed", range(40))
def test_the_same_servers_and_ends_as_looking_at_every_server(seed: int, least_loaded: bool) -> None:
    rng = random.Random(seed)
    servers = [f"gpu-{n}" for n in range(rng.choice([1, 2, 4, 32]))]
    # Coarse figures, so that ties (equal ends, equal free times) really happen.
    service = {(w, n): rng.choice([0.5, 1.0, 1.5]) for w in WORKFLOWS for n in servers}
    switch = {(w, n): rng.choice([0.0, 0.5, 2.0]) for w in WORKFLOWS for n in servers}

    def expected(workflow: str, name: str, cold: bool) -> float:
        return service[workflow, name] + (switch[workflow, name] if cold else 0.0)

    free_at = {n: rng.choice([0.0, 0.0, 0.5, 1.0, 3.0]) for n in servers}
    warm = {n: rng.choice(list(WORKFLOWS.values())) for n in servers}
    jobs = []
    for _ in range(rng.randint(1, 60)):
        capable = frozenset(n for n in servers if rng.random() < 0.8)  # some servers lack a node
        jobs.append((rng.choice(list(WORKFLOWS)), capable))

    forecast = Forecast(free_at, warm, servers, expected, least_loaded=least_loaded)
    ends = [forecast.place(w, WORKFLOWS[w], capable) for w, capable in jobs]
    assert ends == every_server(free_at, warm, servers, expected, least_loaded, jobs)
