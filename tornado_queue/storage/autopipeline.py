"""Calls to one Lua entry point from the IOLoop, sent to Redis in pipelines.

Every call made during one turn of the event loop is written to Redis in one batch (one write,
one read of all the replies, one AOF fsync on Redis's side), while a batch is in flight the
next one gathers, and at most `lanes` batches are in flight at once, each on its own
connection. No thread hop: the caller awaits a future that the lane resolves on the loop.

The code runs as a function library where Redis has them (7.0 and later: `FCALL`, compiled once
when loaded) and as a cached script elsewhere (`EVALSHA`); a call Redis cannot find the code
for (it lost its data or its script cache) never ran and is sent again with the code (`EVAL`).

A call's future ends with the reply, or with the error that says how it failed: `NotSent` (no
connection could be made: the call was never sent), a Redis error reply (the code refused to
run, e.g. while Redis loads its data), or a connection error or timeout once the batch was
written (the call may have run). The caller decides what each means.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

LANES = 2
"""Batches in flight at once: one gathering on the loop while Redis works on the other."""

Batch = list[tuple[Sequence[Any], asyncio.Future[Any]]]


class NotSent(redis.ConnectionError):
    """No connection to Redis could be made, so the command was never sent."""


@dataclass(frozen=True)
class LuaCode:
    """One Lua entry point `run(keys, argv)`, two ways: a function library (compiled once,
    when Redis loads it) and a plain script (its chunk runs again on every call). The name
    carries a digest of the source, so servers of two versions never replace each other's."""

    name: str
    library: bytes
    script: bytes
    sha: str

    @classmethod
    def of(cls, source: str) -> LuaCode:
        name = "tq_" + hashlib.sha1(source.encode()).hexdigest()[:12]
        library = f"#!lua name={name}\n{source}\nredis.register_function('{name}', run)\n"
        script = f"{source}\nreturn run(KEYS, ARGV)\n".encode()
        return cls(name, library.encode(), script, hashlib.sha1(script).hexdigest())

    def command(self, functions: bool, keys: Sequence[Any], args: Sequence[Any]) -> tuple:
        if functions:
            return ("FCALL", self.name, len(keys), *keys, *args)
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def resend(self, keys: Sequence[Any], args: Sequence[Any]) -> tuple:
        return ("EVAL", self.script, len(keys), *keys, *args)


def is_code_missing(error: redis.ResponseError) -> bool:
    """Redis answered that it does not have the code: the call did not run."""
    return isinstance(error, redis.exceptions.NoScriptError) or str(error).startswith(
        "Function not found"
    )


class AutoPipeline:
    """Batches calls of `code` made on one event loop (see the module docstring)."""

    def __init__(self, url: str, code: LuaCode, lanes: int = LANES) -> None:
        # No resends inside redis-py: a call whose reply was lost must not run twice behind
        # the store's back; the caller decides.
        pool = redis.asyncio.ConnectionPool.from_url(url, retry=Retry(NoBackoff(), 0))
        self._connection_class = pool.connection_class
        self._connection_kwargs = pool.connection_kwargs
        # the URL's socket timeout (redis-py's default otherwise), for a whole batch's replies
        self._timeout = self._connection_class(**self._connection_kwargs).socket_timeout
        self._code = code
        self._functions: bool | None = None  # known at the first connection
        self._loop = asyncio.get_running_loop()
        self._outbox: Batch = []
        self._idle_lanes = lanes
        self._connections: list[Any] = []  # connected and idle
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def call(self, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]:
        """Queue one call; its future resolves with the reply or the failure."""
        future = self._loop.create_future()
        self._outbox.append(((keys, args), future))
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

    async def _run_batch(self, batch: Batch) -> None:
        connection = None
        try:
            connection = await self._connection()
            missing = await self._send(connection, batch, resend=False)
            if missing:  # Redis lost the code (a restart without data): those calls never ran
                await self._send(connection, missing, resend=True)  # EVAL caches the script
                if self._functions:
                    await self._load(connection)
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

    async def _send(self, connection: Any, batch: Batch, *, resend: bool) -> Batch:
        """Write the batch, read every reply in order; return the calls Redis could not find
        the code for (they did not run)."""
        code, functions = self._code, bool(self._functions)
        if resend:
            calls = [code.resend(*call) for call, _ in batch]
        else:
            calls = [code.command(functions, *call) for call, _ in batch]
        # hiredis packs in C, ~10x faster than redis-py's Python packer
        packed = b"".join([hiredis.pack_command(call) for call in calls])
        await connection.send_packed_command(packed, check_health=False)
        missing = []
        async with asyncio.timeout(self._timeout):  # one timer for the batch, not per reply
            for call, future in batch:
                try:
                    reply = await connection.read_response(timeout=math.inf)
                except redis.ResponseError as error:  # this call's own error reply
                    if is_code_missing(error) and not resend:
                        missing.append((call, future))
                    elif not future.done():
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
            if self._functions is not False:
                await self._load(connection)
            if not self._functions:  # a cached script, loaded on this connection's server
                await _ask(connection, "SCRIPT", "LOAD", self._code.script)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            await connection.disconnect(nowait=True)
            raise NotSent(str(error)) from error
        return connection

    async def _load(self, connection: Any) -> None:
        """Load the library; a Redis without functions (before 7.0), or a user not allowed
        to load them, gets the script instead from here on."""
        try:
            await _ask(connection, "FUNCTION", "LOAD", "REPLACE", self._code.library)
        except redis.ResponseError:
            self._functions = False
        else:
            self._functions = True


async def _ask(connection: Any, *command: Any) -> Any:
    await connection.send_command(*command, check_health=False)
    return await connection.read_response()


def _close_now(connection: Any) -> None:
    """Close a connection on its running loop without waiting: `disconnect(nowait=True)`
    closes the socket in its first step, so it is run to its end here."""
    closing = connection.disconnect(nowait=True)
    try:
        closing.send(None)
    except StopIteration:
        return
    closing.close()  # it wanted to wait after all: the socket is closing, stop there


def _fail(batch: Batch, error: BaseException) -> None:
    if not isinstance(error, Exception):  # cancelled mid-batch: the calls may have run
        error = redis.ConnectionError(f"the batch was interrupted ({error!r})")
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
