"""Several gateway replicas sharing one pool of ComfyUI servers, through Redis.

What Redis holds (all keys under REDIS_PREFIX):
- jobs and their queue, leases and indexes (`jobs/redis_store.py`);
- input and result images with a TTL, unless SHARED_BLOB_DIR names a directory all replicas mount;
- slot counts per replica with a heartbeat (`slots.py`), so the global limits hold;
- pub/sub channels for job-finished, work-available and breaker-open events (`bus.py`);
- each replica's metrics counters, summed for the cluster view (`cluster_metrics.py`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from ..jobs.blob_dir import DirectoryBlobStore
from ..jobs.blob_redis import RedisBlobStore
from ..jobs.blobs import BlobStore
from ..jobs.redis_store import RedisJobStore
from ..jobs.storage_faults import StorageFaults
from ..observability.job_metrics import JobMetrics
from ..observability.logging import get_logger
from ..settings import Settings
from .bus import RedisJobEvents
from .cluster_metrics import ClusterMetrics
from .slots import RedisSlots


@dataclass
class RedisBackends:
    store: RedisJobStore
    blobs: BlobStore
    events: RedisJobEvents
    slots: RedisSlots
    cluster: ClusterMetrics
    client: Redis


async def open_redis_backends(settings: Settings, metrics: JobMetrics, stack: contextlib.AsyncExitStack,
                              faults: StorageFaults | None = None) -> RedisBackends:
    # A command that meets a dropped connection is sent again on a fresh one, with backoff, before
    # the store turns the error into a 503 (StorageError); idle pooled connections are checked
    # before use, so a Redis restart does not leave stale ones behind.
    client = Redis.from_url(
        settings.redis_url, retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=5),
        socket_connect_timeout=2, socket_timeout=5, health_check_interval=5)
    stack.push_async_callback(client.aclose)
    await client.ping()
    prefix = settings.redis_prefix
    store = await stack.enter_async_context(RedisJobStore(client, prefix=prefix, faults=faults))
    blobs: BlobStore
    if settings.shared_blob_dir is not None:
        blobs = await stack.enter_async_context(DirectoryBlobStore(settings.shared_blob_dir, faults=faults))
    else:
        # Blobs outlive their job's retention, and a job's longest possible life, with room to spare.
        ttl = int(max(3600, 3 * settings.job_cleanup_interval / 1000,
                      2 * (settings.queue_timeout_s + settings.job_timeout_s)))
        blobs = await stack.enter_async_context(RedisBlobStore(client, prefix=prefix, ttl_seconds=ttl, faults=faults))
    events = RedisJobEvents(client, prefix, settings.replica_id, get_logger("redis-events"))
    await events.open()
    stack.push_async_callback(events.close)
    slots = RedisSlots(client, prefix, settings.replica_id, per_instance=settings.max_jobs_per_instance,
                       total=settings.max_concurrent_jobs, heartbeat_s=2 * settings.lease_s)
    await slots.forget()  # counts left under this id by a process that died are not ours to keep
    await slots.heartbeat()
    stack.push_async_callback(slots.forget)
    cluster = ClusterMetrics(client, prefix, metrics, settings.replica_id, interval_s=2.0)
    stack.push_async_callback(cluster.forget)
    return RedisBackends(store, blobs, events, slots, cluster, client)
