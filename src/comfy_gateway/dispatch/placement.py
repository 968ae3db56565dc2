"""Which server runs a job: one that can (its node classes and model files), and the one expected to
finish it first.

Expected finish on a server = the work queued ahead there + the job's measured service time there
+ a model-switch cost when the job's models are not the ones its previous prompt loaded. The
`least_loaded` strategy ignores the models and takes the server with the fewest jobs (ties taken in
turn); both only ever pick a server that can run the job.

The dispatcher asks twice. Before claiming, `plan` says which job types are worth starting now: a
type waits while the server best for it is full, unless a server that can run it is idle. After
claiming, `rank` orders the free servers for that very job.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..comfyui.capabilities import Capabilities
from ..comfyui.instance import Instance, InstancePool
from ..errors import NoCapableServer
from ..jobs.model import Job, JobState
from ..workflows.graph import GRAPH_JOB_TYPE
from ..workflows.needs import Needs, is_model_input, needs_of
from ..workflows.registry import WorkflowRegistry
from .backlog import Backlog, Sent
from .estimates import ServiceEstimates
from .forecast import Forecast

Strategy = Literal["affinity", "least_loaded"]
NEEDS_CACHE = 1024  # entries kept of each cache: needs per (workflow, model parameters), what a server lacks
# Model inputs shown in each server's capability summary beside those the workflows use.
WELL_KNOWN_MODEL_INPUTS = (("CheckpointLoaderSimple", "ckpt_name"), ("UpscaleModelLoader", "model_name"),
                           ("LoraLoader", "lora_name"), ("VAELoader", "vae_name"))


@dataclass(frozen=True)
class Choice:
    """One server for one job, and why."""

    instance: str
    ahead: int  # jobs queued there before this one
    ahead_s: float
    run_s: float
    warm: bool | None  # None: the job loads no model
    strategy: Strategy

    @property
    def finish_s(self) -> float:
        return self.ahead_s + self.run_s

    @property
    def reason(self) -> str:
        models = {True: "warm model", False: "model switch", None: "no model"}[self.warm]
        if self.strategy == "least_loaded":
            return f"least loaded, {self.ahead} ahead ({models})"
        return f"{models}, {self.ahead} ahead"

    def as_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "reason": self.reason, "strategy": self.strategy,
                "jobs_ahead": self.ahead, "warm": self.warm, "expected_seconds": round(self.finish_s, 3),
                "expected_finish_at": round(time.time() + self.finish_s, 3)}


@dataclass(frozen=True)
class Plan:
    free: tuple[str, ...]  # servers with a free slot
    types: frozenset[str] | None  # job types to claim now; None: any


class Placement:
    def __init__(self, *, pool: InstancePool, registry: WorkflowRegistry, estimates: ServiceEstimates,
                 strategy: Strategy, per_instance: int, total: int) -> None:
        self.pool = pool
        self.registry = registry
        self.estimates = estimates
        self.strategy = strategy
        self.per_instance = per_instance
        self.total = total
        self.backlog = Backlog()
        self._needs: dict[tuple[str, tuple[tuple[str, str], ...]], Needs] = {}
        self._lacking: dict[tuple[Capabilities, Needs], list[str]] = {}
        self._turn = itertools.count()

    # --- what a job needs and who has it ---

    def needs(self, job_type: str, params: Mapping[str, Any] | None = None) -> Needs | None:
        """What a job of `job_type` needs; for a submitted graph (GRAPH_JOB_TYPE) `params` is the graph."""
        if job_type == GRAPH_JOB_TYPE:
            return needs_of(params) if params else None  # one pass over the graph: not worth a cache
        workflow = self.registry.get(job_type)
        if workflow is None:
            return None
        # Only a parameter that names a model file changes what a run needs.
        chosen = {k: v for k, v in (params or {}).items()
                  if k in workflow.parameters and is_model_input(workflow.parameters[k].input)}
        key = (job_type, tuple(sorted((k, str(v)) for k, v in chosen.items())))
        if key not in self._needs:
            if len(self._needs) >= NEEDS_CACHE:
                self._needs.clear()
            self._needs[key] = workflow.needs(chosen)
        return self._needs[key]

    def job_needs(self, job: Job) -> Needs | None:
        return self.needs(job.type, job.params.get("graph" if job.type == GRAPH_JOB_TYPE else "workflow"))

    def lacks(self, instance: Instance, needs: Needs) -> list[str]:
        """What the server lacks for these needs; nothing while its capabilities are unknown."""
        known = instance.capabilities
        if known is None:
            return []
        key = (known, needs)  # asked for every server and job type at each dispatch: kept
        if key not in self._lacking:
            if len(self._lacking) >= NEEDS_CACHE:
                self._lacking.clear()
            self._lacking[key] = known.missing(needs.node_classes, needs.models)
        return self._lacking[key]

    def check_runnable(self, job_type: str, params: Mapping[str, Any] | None) -> None:
        """Refuse (422) a job that no configured server can run, naming what is missing and where."""
        needs = self.needs(job_type, params)
        if needs is None or len(self.pool) == 0:
            return
        lacking = {inst.name: self.lacks(inst, needs) for inst in self.pool}
        if all(lacking.values()):
            missing = sorted(set(itertools.chain.from_iterable(lacking.values())))
            raise NoCapableServer(f"no configured ComfyUI server can run {job_type!r}: missing {', '.join(missing)}",
                                  missing=missing, servers=lacking)

    def can_start(self, job: Job) -> bool:
        """Whether a server that is up can run `job` (else it waits for one to recover)."""
        return bool(self._capable(self.job_needs(job), self.pool.available()))

    def _capable(self, needs: Needs | None, names: Iterable[str]) -> list[str]:
        found = [self.pool.get(name) for name in names]
        return [i.name for i in found if i is not None and (needs is None or not self.lacks(i, needs))]

    # --- expected finish ---

    def _choice(self, workflow: str, needs: Needs | None, name: str, usage: Mapping[str, int],
                now: float, queued_s: dict[str, float]) -> Choice:
        """`queued_s`: each server's queue in seconds, filled and kept across the calls of one ranking."""
        instance = self.pool.get(name)
        assert instance is not None
        queue = self.backlog.queue(name)
        ahead = max(usage.get(name, 0), len(queue.jobs))
        others = ahead - len(queue.jobs)  # sent by other replicas: counted at the mean service time
        ahead_s = queued_s.get(name)
        if ahead_s is None:
            ahead_s = queued_s[name] = queue.ahead_s(now)
        if others:
            ahead_s += others * self.estimates.service(workflow, name)
        keys = needs.warm_keys if needs is not None else frozenset()
        warm = None if not keys else keys <= instance.warm_models
        run_s = self.estimates.expected(workflow, name, cold=warm is False)
        return Choice(name, ahead, ahead_s, run_s, warm, self.strategy)

    def _order(self, choices: list[Choice]) -> list[Choice]:
        if not choices:
            return []
        shift = next(self._turn) % len(choices)  # equals are taken in turn, so idle servers share work
        turned = choices[shift:] + choices[:shift]
        if self.strategy == "least_loaded":
            return sorted(turned, key=lambda c: c.ahead)
        return sorted(turned, key=lambda c: (round(c.finish_s, 3), c.ahead))

    # --- the dispatcher's questions ---

    def plan(self, available: Sequence[str], usage: Mapping[str, int],
             waiting: Collection[str] = ()) -> Plan:
        """`waiting`: job types not to claim now whatever the servers (see Dispatcher._place)."""
        if sum(usage.values()) >= self.total:
            return Plan((), frozenset())
        free = tuple(n for n in available if usage.get(n, 0) < self.per_instance)
        if not free:
            return Plan((), frozenset())
        now = time.monotonic()
        names = self.registry.names()
        eligible = set()
        queued_s: dict[str, float] = {}
        for job_type in (n for n in names if n not in waiting):
            needs = self.needs(job_type)
            capable = self._capable(needs, available)
            capable_free = [c for c in capable if c in free]
            if not capable_free:
                continue  # waits: its servers are full or down
            if self.strategy == "least_loaded" or any(usage.get(c, 0) == 0 for c in capable_free):
                eligible.add(job_type)  # an idle server can take it: no need to rank them all
                continue
            best = self._order([self._choice(job_type, needs, c, usage, now, queued_s) for c in capable])[0]
            if best.instance in free:
                eligible.add(job_type)
        if len(eligible) == len(names):
            return Plan(free, None)
        if GRAPH_JOB_TYPE not in waiting:  # a graph's needs are its own: `rank` finds it a capable server
            eligible.add(GRAPH_JOB_TYPE)
        return Plan(free, frozenset(eligible))

    def rank(self, job: Job, free: Sequence[str], usage: Mapping[str, int], avoid: str | None) -> list[Choice]:
        """The free servers that can run `job`, best first (`avoid`, which it just failed on, last)."""
        needs = self.job_needs(job)
        capable = self._capable(needs, free)
        now = time.monotonic()
        ranked = self._order([self._choice(job.type, needs, c, usage, now, {}) for c in capable])
        return [c for c in ranked if c.instance != avoid] + [c for c in ranked if c.instance == avoid]

    def sent(self, job: Job, choice: Choice) -> None:
        needs = self.job_needs(job)
        instance = self.pool.get(choice.instance)
        if instance is not None:
            instance.prompt_sent(needs.warm_keys if needs is not None else frozenset())
        self.backlog.sent(choice.instance, Sent(job.id, job.type, choice.run_s, cold=choice.warm is False))

    def ended(self, job_id: str, instance: str, *, completed: bool) -> None:
        ended = self.backlog.ended(instance, job_id)
        if ended is not None and completed:
            self.estimates.observe(ended.workflow, instance, ended.held_s, cold=ended.cold)

    # --- estimated completion ---

    def placed_here(self, job_id: str) -> bool:
        """Whether this replica sent the job to a server and has not seen it end yet."""
        return job_id in self.backlog

    def estimate(self, job: Job, ahead: Sequence[Job], unseen: int, usage: Mapping[str, int]) -> float | None:
        """Seconds until the unfinished `job` should be done: from its server's queue when this
        replica sent it; from its recorded placement when another one did; while it waits, by placing
        the pending jobs `ahead` of it first, as the dispatcher would, after `unseen` older ones
        (counted, not read: taken to be like those ahead, spread over the servers)."""
        sent = self.backlog.until_end(job.id)
        if sent is not None:
            return sent
        expected = (job.placement or {}).get("expected_finish_at")
        if job.state is JobState.PROCESSING:
            return None if expected is None else max(0.0, float(expected) - time.time())
        return self._finish_in(job, ahead, unseen, usage)

    def _finish_in(self, job: Job, ahead: Sequence[Job], unseen: int, usage: Mapping[str, int]) -> float | None:
        """None when no server that could run the job is up."""
        now = time.monotonic()
        servers = self.pool.available()
        mix = [j.type for j in ahead] or [job.type]
        per_type = {t: sum(self.estimates.service(t, n) for n in servers) for t in set(mix)}
        backlog = unseen * sum(per_type[t] for t in mix) / max(
            1, len(mix) * len(servers) ** 2)  # the unseen jobs' work, shared by the servers
        free_at = {n: self._choice(job.type, None, n, usage, now, {}).ahead_s + backlog for n in servers}
        warm = {i.name: i.warm_models for i in self.pool if i.name in free_at}
        # The jobs ahead are of a few types: the same questions again and again, answered once.
        expected = functools.cache(lambda workflow, name, cold: self.estimates.expected(workflow, name, cold=cold))
        capable = functools.cache(lambda needs: frozenset(self._capable(needs, servers)))
        forecast = Forecast(free_at, warm, servers, expected, least_loaded=self.strategy == "least_loaded")
        finish: float | None = None
        # A job read as pending may have been placed since: it is counted in its server's queue.
        for item in [*(j for j in ahead if j.id not in self.backlog), job]:
            needs = self.job_needs(item)
            keys = needs.warm_keys if needs is not None else frozenset()
            finish = forecast.place(item.type, keys, capable(needs))
        return finish

    # --- what the instance views show ---

    def describe(self, instance: Instance) -> dict[str, Any]:
        known = instance.capabilities
        summary: dict[str, Any] = {"known": known is not None}
        if known is not None:
            inputs = set(WELL_KNOWN_MODEL_INPUTS)
            for name in self.registry.names():
                needs = self.needs(name)
                inputs |= {(m.node_class, m.input) for m in needs.models} if needs is not None else set()
            summary.update(
                node_classes=len(known.node_classes), fetched_at=round(known.fetched_at, 3),
                models={f"{c}.{i}": known.options(c, i) for c, i in sorted(inputs) if known.options(c, i) is not None},
                workflows={name: self._runs(instance, name) for name in self.registry.names()})
        return {"capabilities": summary, "warm_models": sorted(instance.warm_models),
                "recent_models": [sorted(m) for m in instance.recent_models],
                "vram": instance.vram.as_dict() if instance.vram is not None else None,
                "queued_here": self.backlog.local_count(instance.name),
                "estimates": self.estimates.snapshot(instance.name)}

    def _runs(self, instance: Instance, workflow: str) -> str:
        needs = self.needs(workflow)
        lacking = self.lacks(instance, needs) if needs is not None else []
        return "ok" if not lacking else "missing " + ", ".join(lacking)
