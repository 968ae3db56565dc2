"""The HTTP calls the command line makes, with the API key on every request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import aiohttp

FINISHED = frozenset({"completed", "failed"})


class RequestFailed(Exception):
    """The gateway answered with an error status (or not at all)."""

    def __init__(self, message: str, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s  # set when the gateway said to come back later (429, 503)


class GatewayClient:
    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._headers = {"X-API-Key": api_key} if api_key else {}
        # Event streams stay open as long as a job runs: only connecting and each read are bounded.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_read=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> GatewayClient:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("GatewayClient used outside `async with`")
        return self._session

    async def get_json(self, path: str, *, allow: frozenset[int] = frozenset()) -> Any:
        """The JSON body of GET `path`; an error status raises unless it is in `allow`."""
        try:
            async with self.session.get(self.url + path) as resp:
                if resp.status >= 400 and resp.status not in allow:
                    raise await _failure(resp)
                return await resp.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise RequestFailed(f"cannot reach {self.url}: {exc}") from exc

    async def submit(self, image: bytes, filename: str, task: str, params: Mapping[str, str],
                     idempotency_key: str | None = None) -> str:
        """Send `image` as an async job of workflow `task`; its job id.

        With `idempotency_key`, sending it again (after a dropped connection) names the same job."""
        form = aiohttp.FormData()
        for name, value in params.items():
            form.add_field(name, value)
        form.add_field("imageFile", image, filename=filename)
        # Expect: 100-continue: a gateway that turns the job away (a quota, a full queue) answers before
        # the image is sent, instead of closing the connection under an upload it will not read.
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        async with self.session.post(f"{self.url}/api/run/{task}", data=form, params={"async": "true"},
                                     headers=headers, expect100=True) as resp:
            if resp.status != 202:
                raise await _failure(resp)
            body = await resp.json(content_type=None)
            return str(body["job_id"])

    async def events(self, job_id: str) -> AsyncIterator[dict[str, Any]]:
        """The job's status bodies as its event stream sends them; the last one is final."""
        async with self.session.get(f"{self.url}/api/jobs/{job_id}/events",
                                    headers={"Accept": "text/event-stream"}) as resp:
            if resp.status >= 400:
                raise await _failure(resp)
            name, data = "message", ""
            async for raw in resp.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif not line and data:
                    if name == "deleted":
                        raise RequestFailed(f"job {job_id} was deleted", 404)
                    yield json.loads(data)
                    name, data = "message", ""

    async def result(self, job_id: str) -> bytes:
        async with self.session.get(f"{self.url}/api/jobs/{job_id}/result", headers={"Accept": "image/*"}) as resp:
            if resp.status != 200:
                raise await _failure(resp)
            return await resp.read()

    async def cancel(self, job_id: str) -> None:
        async with self.session.delete(f"{self.url}/api/jobs/{job_id}"):
            pass


async def _failure(resp: aiohttp.ClientResponse) -> RequestFailed:
    """The error an answer stands for: the gateway's JSON message when there is one."""
    try:
        body: Any = await resp.json(content_type=None)
    except ValueError:  # not JSON (a proxy's page, say): the status says enough
        body = None
    message = f"{body['error']} (HTTP {resp.status})" if isinstance(body, dict) and body.get("error") \
        else f"HTTP {resp.status}"
    retry = resp.headers.get("Retry-After", "")
    return RequestFailed(message, resp.status, float(retry) if retry.isdigit() else None)
