"""Measured service times per workflow and server (EWMA), with and without a model switch.

A sample is the time a job held its server: from when the server could start on it (it was sent,
or the server's previous job finished, whichever is later) to its completion at the gateway. Jobs
that had to load other models (cold) and jobs that found them loaded (warm) are kept apart; their
difference is the model-switch cost. Before a figure is measured the estimate falls back to the
same workflow on other servers, then to the configured priors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ALPHA = 0.3  # weight of the newest sample: a few jobs are enough to follow a change


@dataclass
class Ewma:
    value: float
    samples: int = 1

    def add(self, sample: float) -> None:
        self.value += ALPHA * (sample - self.value)
        self.samples += 1


def _mean(values: Iterable[float]) -> float | None:
    found = list(values)
    return sum(found) / len(found) if found else None


class ServiceEstimates:
    def __init__(self, *, prior_s: dict[str, float], default_prior_s: float, switch_prior_s: float) -> None:
        self._prior = prior_s
        self._default_prior = default_prior_s
        self._switch_prior = switch_prior_s
        self._warm: dict[tuple[str, str], Ewma] = {}
        self._cold: dict[tuple[str, str], Ewma] = {}
        # The fallback (a workflow's mean over the servers that measured it), kept until the next
        # sample of that workflow: an ETA asks it for every server and every job ahead.
        self._means: dict[tuple[bool, str], float | None] = {}

    def observe(self, workflow: str, server: str, seconds: float, *, cold: bool) -> None:
        table = self._cold if cold else self._warm
        found = table.get((workflow, server))
        if found is None:
            table[(workflow, server)] = Ewma(max(0.0, seconds))
        else:
            found.add(max(0.0, seconds))
        self._means.pop((cold, workflow), None)

    def _measured(self, table: dict[tuple[str, str], Ewma], workflow: str, server: str) -> float | None:
        own = table.get((workflow, server))
        if own is not None:
            return own.value
        key = (table is self._cold, workflow)
        if key not in self._means:
            self._means[key] = _mean(e.value for (wf, _), e in table.items() if wf == workflow)
        return self._means[key]

    def service(self, workflow: str, server: str) -> float:
        """Seconds a job of `workflow` holds `server` when its models are already loaded."""
        warm = self._measured(self._warm, workflow, server)
        if warm is not None:
            return warm
        cold = self._measured(self._cold, workflow, server)
        if cold is not None:
            return max(0.0, cold - self._switch_prior)
        return self._prior.get(workflow, self._default_prior)

    def switch_cost(self, workflow: str, server: str) -> float:
        """Seconds more a job of `workflow` takes on `server` when it has to load its models first."""
        cold = self._measured(self._cold, workflow, server)
        warm = self._measured(self._warm, workflow, server)
        if cold is None or warm is None:
            return self._switch_prior
        return max(0.0, cold - warm)

    def expected(self, workflow: str, server: str, *, cold: bool) -> float:
        return self.service(workflow, server) + (self.switch_cost(workflow, server) if cold else 0.0)

    def snapshot(self, server: str) -> dict[str, dict[str, float | int]]:
        """The figures of one server, by workflow: for the instance views."""
        out: dict[str, dict[str, float | int]] = {}
        for (workflow, name), ewma in self._warm.items():
            if name == server:
                out.setdefault(workflow, {}).update(service_s=round(ewma.value, 3), warm_samples=ewma.samples)
        for (workflow, name), ewma in self._cold.items():
            if name == server:
                out.setdefault(workflow, {}).update(cold_s=round(ewma.value, 3), cold_samples=ewma.samples)
        for workflow, figures in out.items():
            figures["switch_cost_s"] = round(self.switch_cost(workflow, server), 3)
        return out
