"""The real process against hostile or careless clients, and over TLS: a client that stalls
in its headers or body is cut off without delaying anyone else; --certfile/--keyfile serve
HTTPS with a certificate made here."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tornado_queue.config import Settings
from tornado_queue.testing import ROOT, ServerProcess

CUT_OFF_WITHIN = 5.0
"""Longest the test waits for the server to drop a stalled client (the timeout is 1 s)."""
FAST = 0.5
"""An ordinary request's answer while a client stalls must come at least this soon."""


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=CUT_OFF_WITHIN)


def closed_by_server(sock: socket.socket) -> float:
    """Seconds until the server closes the connection (fails the test if it never does)."""
    started = time.monotonic()
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, TimeoutError) as error:
        if isinstance(error, TimeoutError):
            pytest.fail(f"the server kept a stalled connection open for {CUT_OFF_WITHIN} s")
    return time.monotonic() - started


def enqueue_time(url: str) -> float:
    """Seconds an ordinary enqueue takes; asserts it succeeded."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        url + "/tasks", b'{"payload": {}}', {"Content-Type": "application/json"}, method="POST"
    )
    started = time.monotonic()
    with opener.open(request, timeout=10) as response:
        assert response.status == 201
    return time.monotonic() - started


def pending(url: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url + "/queue/stats", timeout=10) as response:
        return json.loads(response.read())["pending"]


@pytest.fixture
def server(tmp_path: Path):
    with ServerProcess(
        tmp_path / "server.log", "--idle-timeout", "1", "--body-timeout", "1"
    ) as running:
        yield running


def test_a_client_stalling_in_its_headers_is_cut_off_and_delays_no_one(server):
    with connect(server.url) as stalled:
        stalled.sendall(b"POST /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")

        assert enqueue_time(server.url) < FAST
        assert closed_by_server(stalled) < CUT_OFF_WITHIN


def test_a_client_stalling_in_its_body_is_cut_off_and_changes_nothing(server):
    with connect(server.url) as stalled:
        stalled.sendall(
            b"POST /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"payload": {'
        )

        assert enqueue_time(server.url) < FAST
        assert closed_by_server(stalled) < CUT_OFF_WITHIN
    assert pending(server.url) == 1  # only the ordinary enqueue


def test_many_idle_connections_are_closed_after_the_idle_timeout(server):
    idle = [connect(server.url) for _ in range(50)]
    try:
        assert enqueue_time(server.url) < FAST
        assert all(closed_by_server(sock) < CUT_OFF_WITHIN for sock in idle)
    finally:
        for sock in idle:
            sock.close()


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command line."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail(
            "the TLS tests need the openssl command (Debian/Ubuntu: apt-get install openssl)"
        )
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_certfile_and_keyfile_serve_https(tmp_path: Path, certificate):
    cert, key = certificate
    with ServerProcess(tmp_path / "tls.log", "--certfile", str(cert), "--keyfile", str(key)) as tls:
        assert tls.url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=str(cert))
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=trusting)
        )
        with opener.open(tls.url + "/healthz", timeout=10) as response:
            assert json.loads(response.read()) == {"status": "ok"}

        # Plain HTTP on the TLS port gets no HTTP answer.
        with connect(tls.url) as plain:
            plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            try:
                answer = plain.recv(4096)
            except ConnectionResetError:
                answer = b""
            assert not answer.startswith(b"HTTP/1.1 200")


def test_a_certificate_without_its_key_is_refused_with_status_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        Settings.from_args(["--certfile", "cert.pem"])

    assert exit_info.value.code == 2
    assert "--certfile and --keyfile go together" in capsys.readouterr().err


def test_an_unreadable_certificate_stops_the_server_with_status_2(tmp_path: Path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    flags = ["--port", "0", "--certfile", str(bogus), "--keyfile", str(bogus)]
    finished = subprocess.run(
        [sys.executable, "main.py", *flags],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert finished.returncode == 2
    assert finished.stderr.startswith("error: cannot load --certfile/--keyfile: ")
    assert len(finished.stderr.splitlines()) == 1
    assert "Traceback" not in finished.stderr
