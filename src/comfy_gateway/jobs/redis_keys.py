"""Every Redis key the job and blob stores use, in Python and (for the Lua scripts) in Lua.

The two spellings sit side by side so they cannot drift apart unnoticed; a unit test compares them.

    {p}:job:{id}          hash, one job (scalars as text, dicts and lists as JSON)
    {p}:pending           zset id -> created_at        the queue (FIFO)
    {p}:leases            zset id -> lease_expires_at  processing jobs
    {p}:finished          zset id -> finished_at       completed and failed jobs
    {p}:all               zset id -> created_at        every job (unfiltered list)
    {p}:state:{state}     zset id -> created_at        list filter
    {p}:type:{type}       zset id -> created_at        list filter
    {p}:instance:{name}   zset id -> created_at        list filter (jobs that have an instance)
    {p}:types             set of type names with at least one job
    {p}:instances         set of instance names with at least one job
    {p}:tenants           set of tenants with at least one pending job
    {p}:tqueue:{tenant}   zset id -> created_at        a tenant's pending jobs (fair share)
    {p}:trunning:{tenant} zset id -> created_at        a tenant's processing jobs (its concurrency cap)
    {p}:turns             hash tenant -> turn          when each tenant was last served (round robin)
    {p}:turn              counter of turns
    {p}:blob:{key}        string, one blob (with a TTL)
    {p}:idem:{key}        string, the job id an idempotency key names (with a TTL)
"""

from __future__ import annotations

from dataclasses import dataclass

# Prepended to every job script; ARGV[1] is always the prefix.
LUA_KEYS = """
local P = ARGV[1]
local K_PENDING = P .. ':pending'
local K_LEASES = P .. ':leases'
local K_FINISHED = P .. ':finished'
local K_ALL = P .. ':all'
local K_TYPES = P .. ':types'
local K_INSTANCES = P .. ':instances'
local K_TENANTS = P .. ':tenants'
local K_TURNS = P .. ':turns'
local K_TURN = P .. ':turn'
local function k_job(id) return P .. ':job:' .. id end
local function k_state(state) return P .. ':state:' .. state end
local function k_type(name) return P .. ':type:' .. name end
local function k_instance(name) return P .. ':instance:' .. name end
local function k_tqueue(tenant) return P .. ':tqueue:' .. tenant end
local function k_trunning(tenant) return P .. ':trunning:' .. tenant end
"""


@dataclass(frozen=True)
class RedisKeys:
    prefix: str

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}:idem:{key}"

    @property
    def pending(self) -> str:
        return f"{self.prefix}:pending"

    @property
    def leases(self) -> str:
        return f"{self.prefix}:leases"

    @property
    def finished(self) -> str:
        return f"{self.prefix}:finished"

    @property
    def all(self) -> str:
        return f"{self.prefix}:all"

    @property
    def types(self) -> str:
        return f"{self.prefix}:types"

    @property
    def instances(self) -> str:
        return f"{self.prefix}:instances"

    def state(self, state: str) -> str:
        return f"{self.prefix}:state:{state}"

    def type(self, name: str) -> str:
        return f"{self.prefix}:type:{name}"

    def instance(self, name: str) -> str:
        return f"{self.prefix}:instance:{name}"

    @property
    def tenants(self) -> str:
        return f"{self.prefix}:tenants"

    @property
    def turns(self) -> str:
        return f"{self.prefix}:turns"

    @property
    def turn(self) -> str:
        return f"{self.prefix}:turn"

    def tenant_queue(self, tenant: str) -> str:
        return f"{self.prefix}:tqueue:{tenant}"

    def tenant_running(self, tenant: str) -> str:
        return f"{self.prefix}:trunning:{tenant}"

    def blob(self, key: str) -> str:
        return f"{self.prefix}:blob:{key}"
