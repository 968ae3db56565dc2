"""Replica-to-replica notifications over Redis pub/sub: job finished or changed, work available,
breaker open.

One subscriber connection per replica, read by one task. Publishing also delivers locally at once,
so a replica never waits on a round trip to hear about its own events.

A replica that is alone publishes nothing: nobody would hear it. It knows it is alone when the
work channel has no other subscriber (asked every PEER_CHECK_S), and stops thinking so as soon as
a message from another replica arrives: each replica says hello when it has subscribed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from redis.asyncio import Redis

from ..background import cancel_and_wait
from ..jobs.events import BreakerHandler, LocalJobEvents, WorkHandler
from ..jobs.model import Job

PEER_CHECK_S = 2.0


class RedisJobEvents(LocalJobEvents):
    def __init__(self, client: Redis, prefix: str, replica: str, log: Any) -> None:
        super().__init__()
        self._client = client
        self._replica = replica
        self._log = log
        self._finished = f"{prefix}:events:finished"
        self._changed = f"{prefix}:events:changed"
        self._work = f"{prefix}:events:work"
        self._breaker = f"{prefix}:events:breaker"
        self._work_handlers: list[WorkHandler] = []
        self._breaker_handlers: list[BreakerHandler] = []
        self._reader: asyncio.Task[None] | None = None
        self._peer_check: asyncio.Task[None] | None = None
        self._pubsub: Any = None
        self.alone = False  # until Redis says so: a missed message costs more than a wasted one
        self._heard_others = 0  # messages from other replicas so far

    async def open(self) -> None:
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await self._subscribe()
        self._reader = asyncio.create_task(self._read(), name="redis-events")
        self._peer_check = asyncio.create_task(self._check_peers(), name="redis-events-peers")

    async def _subscribe(self) -> None:
        """Subscribe, then say hello: replicas that found themselves alone meanwhile are not."""
        await self._pubsub.subscribe(*self._channels)
        await self._client.publish(self._work, self._replica)

    async def _check_peers(self) -> None:
        while True:
            heard = self._heard_others
            with contextlib.suppress(Exception):  # Redis away: keep the last answer, ask again later
                [(_, subscribers)] = await self._client.pubsub_numsub(self._work)
                if heard == self._heard_others:  # a hello during the question outweighs its answer
                    self.alone = int(subscribers) <= 1
            await asyncio.sleep(PEER_CHECK_S)

    @property
    def _channels(self) -> tuple[str, ...]:
        return self._finished, self._changed, self._work, self._breaker

    async def close(self) -> None:
        for task in (self._peer_check, self._reader):
            if task is not None:
                await cancel_and_wait(task)
        self._peer_check = self._reader = None
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        await super().close()

    async def _read(self) -> None:
        while True:
            try:
                async for message in self._pubsub.listen():
                    self._dispatch(message["channel"], message["data"])
            except Exception:  # a dropped connection: resubscribe after a pause, never die
                self._log.warning("Redis event subscription lost; resubscribing", exc_info=True)
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):
                    await self._subscribe()
                for handler in self._work_handlers:  # anything missed meanwhile: look again
                    handler()

    def _dispatch(self, channel: bytes | str, data: bytes | str) -> None:
        channel = channel.decode() if isinstance(channel, bytes) else channel
        text = data.decode() if isinstance(data, bytes) else data
        if channel == self._finished:
            self.deliver(text)
        elif channel == self._changed:
            self.deliver(text, finished=False)
        elif channel == self._work:
            if text != self._replica:
                self._heard_from_another()
                for handler in self._work_handlers:
                    handler()
        elif channel == self._breaker:
            event = json.loads(text)
            if event.get("replica") != self._replica:
                self._heard_from_another()
                for on_open in self._breaker_handlers:
                    on_open(str(event["instance"]), float(event["seconds"]))

    def _heard_from_another(self) -> None:
        self._heard_others += 1
        self.alone = False

    async def _publish(self, channel: str, message: str) -> None:
        if not self.alone:
            await self._client.publish(channel, message)

    async def publish_finished(self, job_id: str, job: Job | None = None) -> None:
        self.deliver(job_id, job=job)
        await self._publish(self._finished, job_id)

    async def publish_changed(self, job_id: str) -> None:
        self.deliver(job_id, finished=False)
        await self._publish(self._changed, job_id)

    async def announce_work(self) -> None:
        await self._publish(self._work, self._replica)

    async def announce_breaker_open(self, instance: str, seconds: float) -> None:
        payload = json.dumps({"instance": instance, "seconds": seconds, "replica": self._replica})
        await self._publish(self._breaker, payload)

    def on_work(self, handler: WorkHandler) -> None:
        self._work_handlers.append(handler)

    def on_breaker_open(self, handler: BreakerHandler) -> None:
        self._breaker_handlers.append(handler)
