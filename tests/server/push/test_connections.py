"""The pusher's kept-alive connections, against real receivers on loopback: one connection
carries many pushes; answers that end a connection, idle ones gone stale or too old, timeouts
and answers over the bound are handled; HTTPS verifies the receiver's certificate and keeps its
connection too; the resolver's --push-allow check holds for every connection opened."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.simple_httpclient import HTTPTimeoutError
from tornado.web import Application, RequestHandler

from tornado_queue.push_allow import AllowingResolver, DisallowedAddress, PushAllow
from tornado_queue.server.push import connections as module
from tornado_queue.server.push.connections import Connections, NoAnswer

BOUND = 1000
HEADERS = {"Content-Type": "application/json"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connections(allow: str = "127.0.0.1", **kw) -> Connections:
    return Connections(AllowingResolver(PushAllow.parse(allow)), BOUND, **kw)


# --- a raw receiver: each connection handled as the test says --------------------------------


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_receiver(
    handle: Handler, closed: asyncio.Event | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """A loopback server calling `handle` per connection; yields its URL and a list that
    counts the connections it accepted. `closed` is set when it has closed one."""
    accepted: list[int] = []
    handlers: set[asyncio.Task] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            if closed is not None:
                closed.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook", accepted
    finally:
        server.close()
        for handler in handlers:  # connections the receiver still holds open
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


def answer(body: bytes = b"{}", *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


# --- keeping connections ---------------------------------------------------------------------


@pytest.mark.gen_test(timeout=10)
async def test_one_connection_carries_many_pushes():
    async def handle(reader, writer):
        while True:
            body = await read_request(reader)
            writer.write(answer(body))
            await writer.drain()

    pool = connections()
    async with raw_receiver(handle) as (url, accepted):
        for n in range(5):
            got = await pool.post(url, HEADERS, b'{"n": %d}' % n, 5)
            assert (got.code, got.body) == (200, b'{"n": %d}' % n)
    pool.close()

    assert (pool.opened, len(accepted)) == (1, 1)


@pytest.mark.gen_test(timeout=10)
async def test_an_answer_that_closes_its_connection_or_is_not_delimited_is_not_kept():
    async def close_it(reader, writer):
        await read_request(reader)
        writer.write(answer(extra=b"Connection: close\r\n"))

    async def read_until_close(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n{}")

    for handle in (close_it, read_until_close):
        pool = connections()
        async with raw_receiver(handle) as (url, accepted):
            for _ in range(3):
                assert (await pool.post(url, HEADERS, b"{}", 5)).code == 200
        assert (pool.opened, len(accepted), pool.idle) == (3, 3, 0)


@pytest.mark.gen_test(timeout=10)
async def test_a_connection_the_receiver_closed_while_idle_is_not_used():
    async def one_answer_then_close(reader, writer):
        await read_request(reader)
        writer.write(answer())
        await writer.drain()

    pool = connections()
    closed = asyncio.Event()
    async with raw_receiver(one_answer_then_close, closed) as (url, accepted):
        await pool.post(url, HEADERS, b"{}", 5)
        assert pool.idle == 1
        await closed.wait()
        assert (await pool.post(url, HEADERS, b"{}", 5)).code == 200

    assert (pool.opened, len(accepted)) == (2, 2)


@pytest.mark.gen_test(timeout=10)
async def test_a_push_cut_off_unanswered_on_a_kept_connection_is_sent_again_on_a_new_one():
    requests: list[bytes] = []

    async def answer_once_then_drop_the_next(reader, writer):
        requests.append(await read_request(reader))
        writer.write(answer())
        await writer.drain()
        requests.append(await read_request(reader))  # read, then closed without an answer

    async def handle(reader, writer):
        if len(requests) == 0:
            await answer_once_then_drop_the_next(reader, writer)
        else:
            requests.append(await read_request(reader))
            writer.write(answer(b'{"again": true}'))
            await writer.drain()

    pool = connections()
    async with raw_receiver(handle) as (url, accepted):
        await pool.post(url, HEADERS, b'{"n": 1}', 5)
        got = await pool.post(url, HEADERS, b'{"n": 2}', 5)

    assert got.body == b'{"again": true}'
    assert requests == [b'{"n": 1}', b'{"n": 2}', b'{"n": 2}']
    assert len(accepted) == 2


@pytest.mark.gen_test(timeout=10)
async def test_a_new_connection_cut_off_is_not_sent_again():
    async def drop(reader, writer):
        await read_request(reader)

    pool = connections()
    async with raw_receiver(drop) as (url, accepted):
        with pytest.raises(NoAnswer, match="closed before any answer"):
            await pool.post(url, HEADERS, b"{}", 5)

    assert len(accepted) == 1


@pytest.mark.gen_test(timeout=10)
async def test_an_answer_cut_off_midway_is_not_sent_again():
    async def half(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}")
        await writer.drain()

    pool = connections()
    async with raw_receiver(half) as (url, accepted):
        with pytest.raises(NoAnswer, match="before the whole answer"):
            await pool.post(url, HEADERS, b"{}", 5)

    assert len(accepted) == 1


@pytest.mark.gen_test(timeout=10)
async def test_idle_connections_older_than_the_limit_are_closed_and_not_used():
    async def handle(reader, writer):
        while True:
            await read_request(reader)
            writer.write(answer())
            await writer.drain()

    clock = Clock()
    pool = connections(clock=clock)
    async with raw_receiver(handle) as (url, accepted):
        await pool.post(url, HEADERS, b"{}", 5)
        clock.now += module.KEEP_IDLE_SECONDS - 0.5
        pool.prune()
        assert pool.idle == 1
        clock.now += 0.5
        await pool.post(url, HEADERS, b"{}", 5)  # the kept one is too old: a new one
        assert pool.opened == 2
        clock.now += module.KEEP_IDLE_SECONDS
        pool.prune()
        assert pool.idle == 0

    assert len(accepted) == 2


@pytest.mark.gen_test(timeout=10)
async def test_an_answer_over_the_bound_is_clipped_and_its_connection_still_kept():
    async def handle(reader, writer):
        while True:
            await read_request(reader)
            writer.write(answer(b"x" * (BOUND * 5)))
            await writer.drain()

    pool = connections()
    async with raw_receiver(handle) as (url, accepted):
        first = await pool.post(url, HEADERS, b"{}", 5)
        await pool.post(url, HEADERS, b"{}", 5)

    assert len(first.body) == BOUND + 1
    assert len(accepted) == 1


@pytest.mark.gen_test(timeout=10)
async def test_a_push_past_its_timeout_is_cut_off_and_its_connection_closed():
    async def slow(reader, writer):
        await read_request(reader)
        await asyncio.sleep(5)

    pool = connections()
    async with raw_receiver(slow) as (url, _accepted):
        with pytest.raises(HTTPTimeoutError):
            await pool.post(url, HEADERS, b"{}", 0.2)

    assert pool.idle == 0


@pytest.mark.gen_test(timeout=10)
async def test_every_connection_opened_passes_the_allow_list():
    async def handle(reader, writer):
        await read_request(reader)
        writer.write(answer())

    pool = connections(allow="receiver.internal")
    async with raw_receiver(handle) as (url, accepted):
        with pytest.raises(DisallowedAddress):
            await pool.post(url, HEADERS, b"{}", 5)

    assert accepted == []


# --- HTTPS -----------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.fail("the HTTPS tests make a certificate with openssl: apt-get install openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@asynccontextmanager
async def https_receiver(cert: Path, key: Path) -> AsyncIterator[str]:
    class Hook(RequestHandler):
        def post(self) -> None:
            self.write(self.request.body)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(Application([("/hook", Hook)]), ssl_options=context)
    server.add_sockets(sockets)
    try:
        yield f"https://127.0.0.1:{sockets[0].getsockname()[1]}/hook"
    finally:
        server.stop()
        await server.close_all_connections()


@pytest.mark.gen_test(timeout=20)
async def test_https_verifies_the_receiver_and_keeps_its_connection(certificate):
    cert, key = certificate
    trusting = ssl.create_default_context(cafile=str(cert))
    pool = connections(ssl_context=trusting)
    async with https_receiver(cert, key) as url:
        for n in range(3):
            assert (await pool.post(url, HEADERS, b'{"n": %d}' % n, 5)).body == b'{"n": %d}' % n
        pool.close()

        untrusting = connections()  # the system's CAs do not know this certificate
        with pytest.raises(ssl.SSLCertVerificationError):
            await untrusting.post(url, HEADERS, b"{}", 5)

    assert pool.opened == 1
