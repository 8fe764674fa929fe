"""Calls to one Lua script from the IOLoop, sent to Redis in pipelines.

Every script call made during one turn of the event loop is written to Redis in one batch
(one write, one read of all the replies, one AOF fsync on Redis's side), while a batch is in
flight the next one gathers, and at most `lanes` batches are in flight at once, each on its own
connection. No thread hop: the caller awaits a future that the lane resolves on the loop.

A call's future ends with the script's reply, or with the error that says how it failed:
`NotSent` (no connection could be made: the call was never sent), a Redis error reply (the
script refused to run, e.g. while Redis loads its data), or a connection error or timeout
once the batch was written (the script may have run). The caller decides what each means.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Sequence
from typing import Any

import hiredis
import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

LANES = 2
"""Batches in flight at once: one gathering on the loop while Redis works on the other."""


class NotSent(redis.ConnectionError):
    """No connection to Redis could be made, so the command was never sent."""


class AutoPipeline:
    """Batches `EVALSHA` calls of `script` made on one event loop (see the module docstring)."""

    def __init__(self, url: str, script: str, lanes: int = LANES) -> None:
        # No resends inside redis-py: a script whose reply was lost must not run twice behind
        # the store's back; the caller decides.
        pool = redis.asyncio.ConnectionPool.from_url(url, retry=Retry(NoBackoff(), 0))
        self._connection_class = pool.connection_class
        self._connection_kwargs = pool.connection_kwargs
        # the URL's socket timeout (redis-py's default otherwise), for a whole batch's replies
        self._timeout = self._connection_class(**self._connection_kwargs).socket_timeout
        self._script = script.encode()
        self._sha = hashlib.sha1(self._script).hexdigest()
        self._loop = asyncio.get_running_loop()
        self._outbox: list[tuple[Sequence[Any], asyncio.Future[Any]]] = []
        self._idle_lanes = lanes
        self._connections: list[Any] = []  # connected and idle
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def call(self, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]:
        """Queue one script call; its future resolves with the reply or the failure."""
        future = self._loop.create_future()
        self._outbox.append(((self._sha, len(keys), *keys, *args), future))
        if not self._scheduled and self._idle_lanes:
            self._scheduled = True
            self._loop.call_soon(self._start_batch)  # after every call of this loop turn
        return future

    def close(self) -> None:
        """Close the idle connections, from the loop or after it has stopped."""
        connections, self._connections = self._connections, []
        if not connections or self._loop.is_closed():
            return
        if self._loop.is_running():
            for connection in connections:
                _close_now(connection)
        else:
            closing = [connection.disconnect() for connection in connections]
            self._loop.run_until_complete(asyncio.gather(*closing, return_exceptions=True))

    def _start_batch(self) -> None:
        self._scheduled = False
        if not self._outbox or not self._idle_lanes:
            return
        batch, self._outbox = self._outbox, []
        self._idle_lanes -= 1
        task = self._loop.create_task(self._run_batch(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, batch: list[tuple[Sequence[Any], asyncio.Future[Any]]]) -> None:
        connection = None
        try:
            connection = await self._connection()
            retry = await self._send(connection, batch, "EVALSHA")
            if retry:  # Redis lost its script cache (a restart): those calls never ran
                await self._send(connection, retry, "EVAL")
        except NotSent as error:
            _fail(batch, error)
        except BaseException as error:  # the connection broke mid-batch: unanswered calls
            _fail(batch, error)
            if connection is not None:
                await connection.disconnect(nowait=True)
            connection = None
            if not isinstance(error, Exception):
                raise
        finally:
            if connection is not None:
                self._connections.append(connection)
            self._idle_lanes += 1
            if self._outbox and not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self._start_batch)

    async def _send(
        self,
        connection: Any,
        batch: list[tuple[Sequence[Any], asyncio.Future[Any]]],
        command: str,
    ) -> list[tuple[Sequence[Any], asyncio.Future[Any]]]:
        """Write the batch, read every reply in order; return the calls Redis could not find
        the script for (they did not run)."""
        if command == "EVAL":
            calls = [("EVAL", self._script, *args[1:]) for args, _ in batch]
        else:
            calls = [("EVALSHA", *args) for args, _ in batch]
        # hiredis packs in C, ~10x faster than redis-py's Python packer
        packed = b"".join([hiredis.pack_command(call) for call in calls])
        await connection.send_packed_command(packed, check_health=False)
        missing = []
        async with asyncio.timeout(self._timeout):  # one timer for the batch, not per reply
            for args, future in batch:
                try:
                    reply = await connection.read_response(timeout=math.inf)
                except redis.exceptions.NoScriptError:
                    missing.append((args, future))
                    continue
                except redis.ResponseError as error:  # this call's own error reply
                    if not future.done():
                        future.set_exception(error)
                    continue
                if not future.done():  # a caller that was cancelled has gone
                    future.set_result(reply)
        return missing

    async def _connection(self) -> Any:
        if self._connections:
            return self._connections.pop()
        connection = self._connection_class(**self._connection_kwargs)
        try:
            await connection.connect()
            # load the script once per connection, so EVALSHA finds it from the first batch
            await connection.send_command("SCRIPT", "LOAD", self._script, check_health=False)
            await connection.read_response()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            await connection.disconnect(nowait=True)
            raise NotSent(str(error)) from error
        return connection


def _close_now(connection: Any) -> None:
    """Close a connection on its running loop without waiting: `disconnect(nowait=True)`
    closes the socket in its first step, so it is run to its end here."""
    closing = connection.disconnect(nowait=True)
    try:
        closing.send(None)
    except StopIteration:
        return
    closing.close()  # it wanted to wait after all: the socket is closing, stop there


def _fail(batch: list[tuple[Sequence[Any], asyncio.Future[Any]]], error: BaseException) -> None:
    if not isinstance(error, Exception):  # cancelled mid-batch: the calls may have run
        error = redis.ConnectionError(f"the batch was interrupted ({error!r})")
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
