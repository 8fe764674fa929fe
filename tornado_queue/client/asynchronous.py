"""`AsyncClient`: the same calls as `Client`, for coroutines, on Tornado's `AsyncHTTPClient`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError

from tornado_queue.client import calls
from tornado_queue.client.calls import Call, Response, TaskRef
from tornado_queue.client.endpoint import (
    DEFAULT_BACKOFF,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    Endpoint,
    base_headers,
)
from tornado_queue.client.errors import ConnectionFailed
from tornado_queue.client.items import BatchItem
from tornado_queue.client.task import Task, Worker
from tornado_queue.models import FINISHED, TaskStatus

T = TypeVar("T")
NO_ANSWER = 599
"""The code Tornado's client gives a request that got no HTTP answer (timeout, reset)."""
BODY_METHODS = ("POST", "PUT", "PATCH")
"""The methods Tornado's client sends a body with (it refuses a body on the others, and
requires one on these)."""


class AsyncClient:
    """A tornado_queue server, called from coroutines on the running event loop.

    Every method mirrors `Client`'s (same arguments, results, exceptions and retry rules; see
    its docstrings) and is awaited. Requests go through `AsyncHTTPClient` (pass your own as
    `http_client`). Tornado's default implementation opens a connection per request and runs
    at most 10 at once, queueing the rest: give it `max_clients` above the number of
    concurrent long-polls, or configure `tornado.curl_httpclient.CurlAsyncHTTPClient` (needs
    pycurl) to keep connections alive.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        worker_id: str | None = None,
        http_client: AsyncHTTPClient | None = None,
    ) -> None:
        self.endpoint = Endpoint.parse(url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._headers = base_headers(token)
        self.worker_id = worker_id
        self._worker_headers = calls.worker_headers(worker_id)
        self._http = http_client or AsyncHTTPClient()

    @property
    def url(self) -> str:
        return self.endpoint.url

    async def enqueue(
        self,
        payload: dict[str, Any],
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
        group: str | None = None,
        expires_in: float | None = None,
        after: Sequence[str] | None = None,
    ) -> str:
        return await self._call(
            calls.enqueue(
                payload,
                idempotency_key,
                queue=queue,
                priority=priority,
                delay=delay,
                max_attempts=max_attempts,
                group=group,
                expires_in=expires_in,
                after=after,
            )
        )

    async def enqueue_many(
        self,
        payloads: Iterable[dict[str, Any] | BatchItem],
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
        max_attempts: int | None = None,
        group: str | None = None,
        expires_in: float | None = None,
    ) -> list[str]:
        return await self._call(
            calls.enqueue_many(
                payloads,
                queue=queue,
                priority=priority,
                delay=delay,
                max_attempts=max_attempts,
                group=group,
                expires_in=expires_in,
            )
        )

    async def dequeue(
        self, *, queue: str | None = None, wait: float = 0, lease: float | None = None
    ) -> Task | None:
        tasks = await self.dequeue_many(1, queue=queue, wait=wait, lease=lease)
        return tasks[0] if tasks else None

    async def dequeue_many(
        self, count: int, *, queue: str | None = None, wait: float = 0, lease: float | None = None
    ) -> list[Task]:
        return await self._call(calls.dequeue_many(count, queue, wait, lease))

    async def complete(self, task: TaskRef, result: Any = None) -> Task:
        return await self._call(calls.complete(task, result))

    async def fail(self, task: TaskRef, error: str | None = None, *, retry: bool = True) -> Task:
        return await self._call(calls.fail(task, error, retry))

    async def heartbeat(self, task: TaskRef, *, lease: float | None = None) -> Task:
        return await self._call(calls.heartbeat(task, lease))

    async def progress(self, task: TaskRef, value: Any) -> Task:
        return await self._call(calls.progress(task, value))

    async def get(self, task: TaskRef, *, wait: float | None = None) -> Task:
        return await self._call(calls.get(task, wait))

    async def wait_for(self, task: TaskRef, timeout: float) -> Task:
        """As `Client.wait_for`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = await self.get(task, wait=calls.result_wait(deadline - loop.time()))
            if found.status in FINISHED:
                return found
            if loop.time() >= deadline:
                raise calls.timed_out(found, timeout)

    async def retry(self, task: TaskRef) -> Task:
        return await self._call(calls.retry(task))

    async def queue(self, name: str) -> dict[str, Any]:
        return await self._call(calls.queue(name))

    async def configure_queue(self, name: str, **settings: Any) -> dict[str, Any]:
        return await self._call(calls.configure_queue(name, settings))

    async def pause(self, name: str) -> dict[str, Any]:
        return await self.configure_queue(name, paused=True)

    async def resume(self, name: str) -> dict[str, Any]:
        return await self.configure_queue(name, paused=None)

    async def retry_queue(self, queue: str) -> int:
        return await self._call(calls.retry_queue(queue))

    async def purge_queue(self, name: str, status: str) -> int:
        return await self._call(calls.purge_queue(name, status))

    async def view(
        self,
        queue: str,
        *,
        status: str = TaskStatus.PENDING,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[Task]:
        return await self._call(calls.view(queue, status, limit, offset))

    async def delete(self, task: TaskRef) -> None:
        await self._call(calls.delete(task))

    async def stats(self, queue: str | None = None) -> dict[str, int]:
        return await self._call(calls.stats(queue))

    async def totals(self, queue: str | None = None) -> dict[str, int]:
        return await self._call(calls.totals(queue))

    async def queues(self) -> list[dict[str, Any]]:
        return await self._call(calls.queues())

    async def workers(self) -> list[Worker]:
        return await self._call(calls.workers())

    async def put_schedule(
        self,
        name: str,
        *,
        queue: str,
        payload: dict[str, Any],
        cron: str | None = None,
        every: float | None = None,
        timezone: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        paused: bool | None = None,
    ) -> dict[str, Any]:
        definition = {
            "queue": queue,
            "payload": payload,
            "cron": cron,
            "every": every,
            "timezone": timezone,
            "priority": priority,
            "max_attempts": max_attempts,
            "paused": paused,
        }
        return await self._call(calls.put_schedule(name, definition))

    async def get_schedule(self, name: str) -> dict[str, Any]:
        return await self._call(calls.get_schedule(name))

    async def schedules(self) -> list[dict[str, Any]]:
        return await self._call(calls.schedules())

    async def delete_schedule(self, name: str) -> None:
        await self._call(calls.delete_schedule(name))

    async def _call(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self._send(call)
            except ConnectionFailed:
                pause = calls.retry_pause(call, None, attempt, self.retries, self.backoff)
                if pause is None:
                    raise
            else:
                pause = calls.retry_pause(call, response, attempt, self.retries, self.backoff)
                if pause is None:
                    return calls.check(call, response)
            await asyncio.sleep(pause)
            attempt += 1

    def _call_headers(self, call: Call[Any]) -> dict[str, str]:
        headers = self._headers | dict(call.headers)
        return headers | self._worker_headers if call.names_worker else headers

    async def _send(self, call: Call[Any]) -> Response:
        request = HTTPRequest(
            self.url + call.path,
            method=call.method,
            headers=self._call_headers(call),
            body=call.body if call.method in BODY_METHODS else None,
            connect_timeout=self.timeout,
            request_timeout=self.timeout + call.wait,
        )
        try:
            reply = await self._http.fetch(request, raise_error=False)
        except (OSError, StreamClosedError) as exc:
            raise self._no_answer(call, exc) from exc
        except HTTPClientError as exc:
            if exc.code != NO_ANSWER:
                raise
            raise self._no_answer(call, exc) from exc
        if reply.code == NO_ANSWER:  # older Tornado reports some failures this way
            raise self._no_answer(call, reply.error or "no answer")
        headers = {name.lower(): value for name, value in reply.headers.get_all()}
        return Response(reply.code, headers, reply.body or b"")

    def _no_answer(self, call: Call[Any], exc: object) -> ConnectionFailed:
        return ConnectionFailed(f"{call.method} {self.url}{call.path}: no answer ({exc})")
