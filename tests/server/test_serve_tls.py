"""HTTPS as served: only forward-secret AEAD suites on TLS 1.2 (and TLS 1.3), HSTS on every
HTTPS answer and never on plain HTTP, and a `Server` header that names no version."""

from __future__ import annotations

import http.client
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tornado_queue.config import Settings
from tornado_queue.server.serve import tls_context
from tornado_queue.testing import ServerProcess

HSTS = "max-age=31536000"


def make_certificate(directory: Path, kind: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 with an EC ("ec") or RSA ("rsa") key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail(
            "the TLS tests need the openssl command (Debian/Ubuntu: apt-get install openssl)"
        )
    cert, key = directory / f"{kind}-cert.pem", directory / f"{kind}-key.pem"
    key_options = (
        ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] if kind == "ec" else ["rsa:2048"]
    )
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", *key_options, "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("certificates")
    return {kind: make_certificate(directory, kind) for kind in ("ec", "rsa")}


def client_context(
    cert: Path, ciphers: str | None = None, version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """A client trusting `cert`, optionally limited to `ciphers` (TLS 1.2 names) and to one
    TLS version. Security level 0, so the client itself would accept the old suites: a failed
    handshake is then the server's refusal."""
    context = ssl.create_default_context(cafile=str(cert))
    if ciphers is not None:
        context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    if version is not None:
        context.minimum_version = context.maximum_version = version
    return context


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[str, str] | None:
    """Run a TLS handshake in memory: the (protocol, cipher) agreed, or None if it failed."""
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client_end = client.wrap_bio(client_in, client_out, server_hostname="127.0.0.1")
    server_end = server.wrap_bio(server_in, server_out, server_side=True)
    finished = set()
    for _ in range(10):
        for end in (client_end, server_end):
            if end not in finished:
                try:
                    end.do_handshake()
                    finished.add(end)
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError:
                    return None
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if len(finished) == 2:
            cipher, version = client_end.cipher(), client_end.version()
            assert cipher is not None and version is not None
            return version, cipher[0]
    raise AssertionError("the handshake neither finished nor failed")


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = tls_context(Settings(certfile=str(cert), keyfile=str(key)))
    assert context is not None
    return context


def permissive_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server that takes any suite: shows a refused client would otherwise get through."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.load_cert_chain(cert, key)
    return context


# --- the TLS context -------------------------------------------------------------------------


def test_every_suite_offered_is_aead_with_ecdhe_or_tls13(certificates):
    ciphers = server_context(*certificates["ec"]).get_ciphers()

    assert ciphers
    for cipher in ciphers:
        assert cipher["aead"], cipher["name"]
        assert cipher["protocol"] == "TLSv1.3" or cipher["kea"] == "kx-ecdhe", cipher["name"]


@pytest.mark.parametrize(
    ("kind", "suite"),
    [
        ("ec", "ECDHE-ECDSA-AES128-SHA"),  # CBC
        ("ec", "ECDHE-ECDSA-AES256-SHA384"),  # CBC
        ("rsa", "ECDHE-RSA-AES128-SHA"),  # CBC
        ("rsa", "AES128-GCM-SHA256"),  # AEAD, but RSA key exchange: no forward secrecy
        ("rsa", "AES256-SHA"),  # both
    ],
)
def test_a_tls12_client_limited_to_a_weak_suite_is_refused(certificates, kind, suite):
    cert, key = certificates[kind]
    client = client_context(cert, suite, ssl.TLSVersion.TLSv1_2)

    assert handshake(permissive_context(cert, key), client) == ("TLSv1.2", suite)
    assert handshake(server_context(cert, key), client) is None


@pytest.mark.parametrize(
    ("kind", "suite"),
    [
        ("ec", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("ec", "ECDHE-ECDSA-CHACHA20-POLY1305"),
        ("rsa", "ECDHE-RSA-AES256-GCM-SHA384"),
        ("rsa", "ECDHE-RSA-CHACHA20-POLY1305"),
    ],
)
def test_a_tls12_client_with_an_aead_ecdhe_suite_gets_through(certificates, kind, suite):
    cert, key = certificates[kind]
    client = client_context(cert, suite, ssl.TLSVersion.TLSv1_2)

    assert handshake(server_context(cert, key), client) == ("TLSv1.2", suite)


# --- the running server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def https_server(certificates, tmp_path_factory) -> Iterator[ServerProcess]:
    cert, key = certificates["ec"]
    log = tmp_path_factory.mktemp("https") / "server.log"
    with ServerProcess(log, "--certfile", str(cert), "--keyfile", str(key)) as server:
        yield server


@pytest.fixture(scope="module")
def http_server(tmp_path_factory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("http") / "server.log") as server:
        yield server


def request(
    server: ServerProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    context: ssl.SSLContext | None = None,
) -> http.client.HTTPResponse:
    """One request on a fresh connection; the answer with its body read."""
    if server.url.startswith("https:"):
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", server.port, context=context, timeout=10
        )
    else:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def answers(server: ServerProcess, context: ssl.SSLContext | None) -> dict[str, object]:
    """One answer of each kind: API, created, error, 405, 204, dashboard page, static file."""
    created = request(server, "POST", "/tasks", b'{"payload": {}}', context)
    location = created.getheader("Location")
    assert created.status == 201 and location
    found = {
        "api": request(server, "GET", "/healthz", context=context),
        "created": created,
        "error": request(server, "GET", "/tasks/no-such-task", context=context),
        "method": request(server, "PATCH", "/queues", context=context),
        "no content": request(server, "DELETE", location, context=context),
        "dashboard": request(server, "GET", "/", context=context),
        "docs": request(server, "GET", "/docs", context=context),
        "file": request(server, "GET", "/dashboard/dashboard.js", context=context),
        "missing file": request(server, "GET", "/dashboard/nope.js", context=context),
    }
    statuses = {name: response.status for name, response in found.items()}
    assert statuses == {
        "api": 200,
        "created": 201,
        "error": 404,
        "method": 405,
        "no content": 204,
        "dashboard": 200,
        "docs": 200,
        "file": 200,
        "missing file": 404,
    }
    return found


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLS 1.2", "TLS 1.3"]
)
def test_every_https_answer_has_hsts_and_a_server_header_without_version(
    https_server, certificates, version
):
    context = client_context(certificates["ec"][0], version=version)

    for name, response in answers(https_server, context).items():
        assert response.getheader("Strict-Transport-Security") == HSTS, name
        assert response.getheader("Server") == "tornado_queue", name
        assert response.getheader("X-Request-ID"), name


def test_no_http_answer_has_hsts_and_none_names_a_version(http_server):
    for name, response in answers(http_server, None).items():
        assert response.getheader("Strict-Transport-Security") is None, name
        server = response.getheader("Server")
        assert server == "tornado_queue", name
        assert not re.search(r"[0-9]", server), name


def test_the_running_server_refuses_a_cbc_client_and_serves_aead_and_tls13(
    https_server, certificates
):
    cert = certificates["ec"][0]
    cbc = client_context(cert, "ECDHE-ECDSA-AES128-SHA", ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError):
        request(https_server, "GET", "/healthz", context=cbc)

    for context in (
        client_context(cert, "ECDHE-ECDSA-AES256-GCM-SHA384", ssl.TLSVersion.TLSv1_2),
        client_context(cert, version=ssl.TLSVersion.TLSv1_3),
    ):
        response = request(https_server, "GET", "/healthz", context=context)
        assert response.status == 200
