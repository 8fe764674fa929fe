"""`--push-allow`: parsing its entries, the check of a push URL, the connect-time check of
every resolved address, and the resolver that applies it to a real HTTP client on loopback."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
from tornado.httpserver import HTTPServer
from tornado.netutil import Resolver
from tornado.simple_httpclient import SimpleAsyncHTTPClient
from tornado.testing import bind_unused_port
from tornado.web import Application, RequestHandler

from tornado_queue.errors import ValidationError
from tornado_queue.push_allow import (
    PUSH_OFF,
    AllowEntry,
    AllowingResolver,
    DisallowedAddress,
    PushAllow,
)

# --- parse


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("receiver.internal", AllowEntry(name="receiver.internal")),
        ("Receiver.Internal", AllowEntry(name="receiver.internal")),
        ("localhost", AllowEntry(name="localhost")),
        ("my_service-1", AllowEntry(name="my_service-1")),
        ("receiver.internal:8443", AllowEntry(name="receiver.internal", port=8443)),
        ("127.0.0.1", AllowEntry(network=ipaddress.ip_network("127.0.0.1/32"))),
        ("127.0.0.1:8080", AllowEntry(network=ipaddress.ip_network("127.0.0.1/32"), port=8080)),
        ("::1", AllowEntry(network=ipaddress.ip_network("::1/128"))),
        ("[::1]", AllowEntry(network=ipaddress.ip_network("::1/128"))),
        ("[::1]:8080", AllowEntry(network=ipaddress.ip_network("::1/128"), port=8080)),
        ("::ffff:127.0.0.1", AllowEntry(network=ipaddress.ip_network("127.0.0.1/32"))),
        ("10.0.0.0/8", AllowEntry(network=ipaddress.ip_network("10.0.0.0/8"))),
        ("fd00::/8", AllowEntry(network=ipaddress.ip_network("fd00::/8"))),
    ],
)
def test_each_kind_of_entry_parses(text, entry):
    assert PushAllow.parse(text).entries == (entry,)


def test_entries_are_comma_separated_with_whitespace_around_them_ignored():
    allow = PushAllow.parse(" receiver.internal , 10.0.0.0/8,\t[::1]:8080 ")
    assert allow.entries == (
        AllowEntry(name="receiver.internal"),
        AllowEntry(network=ipaddress.ip_network("10.0.0.0/8")),
        AllowEntry(network=ipaddress.ip_network("::1/128"), port=8080),
    )
    assert allow.enabled


@pytest.mark.parametrize("text", ["", "   ", " , "])
def test_no_entry_means_push_is_off(text):
    allow = PushAllow.parse(text)
    assert allow.entries == ()
    assert not allow.enabled


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("receiver.internal:0", "a port is a number from 1 to 65535"),
        ("receiver.internal:65536", "a port is a number from 1 to 65535"),
        ("receiver.internal:http", "a port is a number from 1 to 65535"),
        ("receiver.internal:", "a port is a number from 1 to 65535"),
        ("10.0.0.1/8", "has host bits set"),
        ("receiver/8", "does not appear to be an IPv4 or IPv6 network"),
        ("[127.0.0.1]", "only an IPv6 address goes in brackets"),
        ("[::1", "[address] or [address]:port"),
        ("[::1]8080", "[address] or [address]:port"),
        ("-receiver", "a host name is labels"),
        ("receiver..internal", "a host name is labels"),
        ("receiver.internal.", "a host name is labels"),
        ("10.0.0", "a host name is labels"),
        ("rëceiver", "a host name is labels"),
        ("http://receiver.internal", "a URL: list only its host, or host:port"),
        ("https://10.0.0.5:8443/hook", "a URL: list only its host, or host:port"),
    ],
)
def test_a_bad_entry_is_named_with_what_is_accepted(text, reason):
    with pytest.raises(ValueError) as raised:
        PushAllow.parse(f"receiver.internal, {text}")
    message = str(raised.value)
    assert message.startswith(f"--push-allow entry '{text}' is not valid")
    assert reason in message
    assert "host name, host:port, IP address or CIDR network" in message


def test_a_bad_entry_with_control_characters_is_shown_printable():
    with pytest.raises(ValueError, match=r"entry 'bad\\x00name' is not valid"):
        PushAllow.parse("bad\x00name")


# --- check_url

ALLOW = PushAllow.parse(
    "receiver.internal, api.example.com:8443, 127.0.0.1, [::1]:8080, 10.0.0.0/8, fd00::/8"
)


@pytest.mark.parametrize(
    "url",
    [
        "http://receiver.internal/hook",
        "https://receiver.internal:9000/hook?x=1",
        "http://RECEIVER.internal/",
        "https://api.example.com:8443/",
        "http://127.0.0.1:5000/",
        "http://[::1]:8080/hook",
        "http://10.1.2.3/",
        "https://10.255.255.255:1/",
        "http://[fd00::abcd]:65535/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
def test_urls_the_list_covers_are_allowed(url):
    ALLOW.check_url(url)


def refusal(allow: PushAllow, url: str) -> str:
    with pytest.raises(ValidationError) as raised:
        allow.check_url(url)
    return str(raised.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://receiver.internal/", "setting 'push.url' must use http or https, got 'ftp'"),
        ("FILE:///etc/passwd", "setting 'push.url' must use http or https, got 'file'"),
        (
            "receiver.internal/hook",
            "setting 'push.url' must be an absolute URL starting with http(s)://",
        ),
        ("http:///hook", "setting 'push.url' must name a host"),
        ("http://:8080/hook", "setting 'push.url' must name a host"),
        (
            "http://user:secret@receiver.internal/",
            "setting 'push.url' must not hold a user name or password: "
            "send credentials in 'push.headers'",
        ),
        (
            "http://user@receiver.internal/",
            "setting 'push.url' must not hold a user name or password: "
            "send credentials in 'push.headers'",
        ),
        ("http://receiver.internal/#part", "setting 'push.url' must not have a fragment (#...)"),
        ("http://receiver.internal/#", "setting 'push.url' must not have a fragment (#...)"),
        ("http://receiver.internal:0/", "setting 'push.url' must have a port from 1 to 65535"),
        ("http://receiver.internal:65536/", "setting 'push.url' must have a port from 1 to 65535"),
        ("http://receiver.internal:80a/", "setting 'push.url' must have a port from 1 to 65535"),
        ("http://[::1/", "setting 'push.url' is not a valid URL: Invalid IPv6 URL"),
        (  # urlsplit reads the scheme's port here, Tornado's client a host "receiver.internal:"
            "http://receiver.internal:/",
            "setting 'push.url' has a malformed host or port: 'receiver.internal:'",
        ),
        (
            "http://[::1]x:8080/",
            "setting 'push.url' has a malformed host or port: '[::1]x:8080'",
        ),
        (
            "http://receiver.internal/a b",
            "setting 'push.url' must hold only visible ASCII characters "
            "(percent-encode the others)",
        ),
        (
            "http://receiver.internal\n.evil.example/",
            "setting 'push.url' must hold only visible ASCII characters "
            "(percent-encode the others)",
        ),
        (
            "http://rëceiver.internal/",
            "setting 'push.url' must hold only visible ASCII characters "
            "(percent-encode the others)",
        ),
        (
            "http://x:81/",
            "setting 'push.url' 'http://x:81/' is not allowed: --push-allow does not list its "
            "host 'x' on port 81",
        ),
        (
            "http://api.example.com/",
            "setting 'push.url' 'http://api.example.com/' is not allowed: --push-allow does not "
            "list its host 'api.example.com' on port 80",
        ),
        (
            "https://api.example.com/",
            "setting 'push.url' 'https://api.example.com/' is not allowed: --push-allow does not "
            "list its host 'api.example.com' on port 443",
        ),
        (
            "http://[::1]:8081/",
            "setting 'push.url' 'http://[::1]:8081/' is not allowed: --push-allow does not list "
            "its host '::1' on port 8081",
        ),
        (
            "http://127.0.0.2/",
            "setting 'push.url' 'http://127.0.0.2/' is not allowed: --push-allow does not list "
            "its host '127.0.0.2' on port 80",
        ),
        (
            "http://11.0.0.1/",
            "setting 'push.url' 'http://11.0.0.1/' is not allowed: --push-allow does not list "
            "its host '11.0.0.1' on port 80",
        ),
        (
            "http://receiver.internal.evil.example/",
            "setting 'push.url' 'http://receiver.internal.evil.example/' is not allowed: "
            "--push-allow does not list its host 'receiver.internal.evil.example' on port 80",
        ),
        (  # the 127.0.0.1 entry does not stand for a name that resolves to it
            "http://localhost/",
            "setting 'push.url' 'http://localhost/' is not allowed: --push-allow does not list "
            "its host 'localhost' on port 80",
        ),
    ],
)
def test_each_refusal_says_what_is_wrong(url, message):
    assert refusal(ALLOW, url) == message


def test_a_url_longer_than_2048_characters_is_refused():
    url = "http://receiver.internal/" + "a" * (2048 - len("http://receiver.internal/"))
    ALLOW.check_url(url)
    assert refusal(ALLOW, url + "a") == "setting 'push.url' must be at most 2048 characters"


def test_a_refused_url_is_clipped_to_200_characters():
    url = "http://other.example/" + "a" * 500
    shown = url[:200] + "…"
    assert refusal(ALLOW, url) == (
        f"setting 'push.url' '{shown}' is not allowed: --push-allow does not list its host "
        "'other.example' on port 80"
    )


def test_a_port_on_an_entry_limits_it_to_that_port():
    allow = PushAllow.parse("receiver.internal:8443")
    allow.check_url("https://receiver.internal:8443/")
    assert "on port 443" in refusal(allow, "https://receiver.internal/")


@pytest.mark.parametrize("url", ["http://receiver.internal/", "ftp://x/", "not a url"])
def test_without_entries_push_is_off_whatever_the_url(url):
    assert refusal(PushAllow.parse(""), url) == PUSH_OFF
    assert PUSH_OFF == (
        "push is off: start the server with --push-allow (or TQ_PUSH_ALLOW) listing the host "
        "names or networks that push URLs may target"
    )


# --- address_allowed

TABLE = PushAllow.parse("receiver.internal, metadata.internal:80, 127.0.0.1:8080, 10.0.0.0/8")


@pytest.mark.parametrize(
    ("host", "port", "address", "allowed"),
    [
        # Through a listed name: only public addresses.
        ("receiver.internal", 443, "93.184.215.14", True),
        ("RECEIVER.INTERNAL", 443, "93.184.215.14", True),
        ("receiver.internal", 443, "2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("receiver.internal", 80, "127.0.0.1", False),
        ("receiver.internal", 80, "::1", False),
        ("receiver.internal", 80, "::ffff:127.0.0.1", False),
        ("receiver.internal", 80, "::ffff:93.184.215.14", True),
        ("receiver.internal", 80, "192.168.1.10", False),
        ("receiver.internal", 80, "172.16.0.1", False),
        ("receiver.internal", 80, "100.64.0.1", False),
        ("receiver.internal", 80, "fd00::1", False),
        ("receiver.internal", 80, "fe80::1", False),
        ("receiver.internal", 80, "0.0.0.0", False),
        ("receiver.internal", 80, "::", False),
        ("receiver.internal", 80, "224.0.0.1", False),
        ("receiver.internal", 80, "ff0e::1", False),
        ("receiver.internal", 80, "240.0.0.1", False),
        ("receiver.internal", 80, "255.255.255.255", False),
        ("receiver.internal", 80, "64:ff9b::7f00:1", False),
        ("metadata.internal", 80, "169.254.169.254", False),
        ("metadata.internal", 80, "93.184.215.14", True),
        ("metadata.internal", 81, "93.184.215.14", False),
        # 10.x: refused through a name unless a network entry covers it, which 10.0.0.0/8 does.
        ("receiver.internal", 80, "10.1.2.3", True),
        ("unlisted.example", 80, "10.1.2.3", True),
        ("unlisted.example", 80, "93.184.215.14", False),
        # An address entry allows that address on its port only, whatever the name.
        ("127.0.0.1", 8080, "127.0.0.1", True),
        ("localhost", 8080, "127.0.0.1", True),
        ("localhost", 8080, "::ffff:127.0.0.1", True),
        ("127.0.0.1", 8081, "127.0.0.1", False),
        ("localhost", 8080, "::1", False),
        ("receiver.internal", 80, "not an address", False),
    ],
)
def test_address_allowed(host, port, address, allowed):
    assert TABLE.address_allowed(host, port, address) is allowed


def test_ten_dot_through_a_name_needs_a_network_entry():
    assert not PushAllow.parse("receiver.internal").address_allowed(
        "receiver.internal", 80, "10.0.0.5"
    )
    assert PushAllow.parse("receiver.internal,10.0.0.0/24").address_allowed(
        "receiver.internal", 80, "10.0.0.5"
    )


# --- AllowingResolver on its own


class FixedResolver(Resolver):
    """Answers every host with the same addresses, and records the lookups."""

    def initialize(self, addresses: list[str]) -> None:  # type: ignore[override]
        self.addresses = addresses
        self.asked: list[tuple[str, int]] = []
        self.closed = False

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        self.asked.append((host, port))
        return [
            (socket.AF_INET6, (a, port, 0, 0)) if ":" in a else (socket.AF_INET, (a, port))
            for a in self.addresses
        ]

    def close(self) -> None:
        self.closed = True


@pytest.mark.gen_test
async def test_the_resolver_keeps_only_the_allowed_addresses():
    inner = FixedResolver(["127.0.0.1", "10.0.0.7", "93.184.215.14", "::1"])
    resolver = AllowingResolver(PushAllow.parse("receiver.internal, 10.0.0.0/8"), inner)
    found = await resolver.resolve("receiver.internal", 443)
    assert found == [(socket.AF_INET, ("10.0.0.7", 443)), (socket.AF_INET, ("93.184.215.14", 443))]
    assert inner.asked == [("receiver.internal", 443)]
    resolver.close()
    assert inner.closed


@pytest.mark.gen_test
async def test_an_address_is_judged_without_a_lookup():
    inner = FixedResolver(["93.184.215.14"])
    resolver = AllowingResolver(PushAllow.parse("10.0.0.0/8, ::1"), inner)

    assert await resolver.resolve("10.0.0.7", 80) == [(socket.AF_INET, ("10.0.0.7", 80))]
    assert await resolver.resolve("::1", 81) == [(socket.AF_INET6, ("::1", 81))]
    with pytest.raises(DisallowedAddress, match=r"'127\.0\.0\.1' resolves to 127\.0\.0\.1,"):
        await resolver.resolve("127.0.0.1", 80)
    assert inner.asked == []
    # another family than the address's is the lookup's to answer (here: an unlisted address)
    with pytest.raises(DisallowedAddress, match=r"resolves to 93\.184\.215\.14,"):
        await resolver.resolve("10.0.0.7", 80, socket.AF_INET6)
    assert inner.asked == [("10.0.0.7", 80)]


@pytest.mark.gen_test
async def test_the_resolver_refuses_when_no_address_is_left_naming_up_to_three():
    allow = PushAllow.parse("receiver.internal")
    one = AllowingResolver(allow, FixedResolver(["127.0.0.1", "127.0.0.1"]))
    with pytest.raises(DisallowedAddress) as raised:
        await one.resolve("receiver.internal", 80)
    assert str(raised.value) == (
        "host 'receiver.internal' resolves to 127.0.0.1, which --push-allow does not allow"
    )
    assert raised.value.host == "receiver.internal"
    assert raised.value.addresses == ["127.0.0.1"]
    assert isinstance(raised.value, OSError)

    many = AllowingResolver(
        allow, FixedResolver(["10.0.0.1", "10.0.0.2", "::1", "169.254.169.254", "fd00::1"])
    )
    with pytest.raises(DisallowedAddress) as raised:
        await many.resolve("receiver.internal", 80)
    assert str(raised.value) == (
        "host 'receiver.internal' resolves to 10.0.0.1, 10.0.0.2, ::1 and 2 more, which "
        "--push-allow does not allow"
    )


# --- AllowingResolver in a real client, against a real server on loopback


class Hello(RequestHandler):
    def initialize(self, seen: list[str]) -> None:
        self.seen = seen

    def get(self) -> None:
        self.seen.append(self.request.host)
        self.write("hello")


@pytest.fixture
def receiver(io_loop):
    """An HTTP server on 127.0.0.1: (its port, the Host header of each request it got)."""
    sock, port = bind_unused_port()
    seen: list[str] = []
    server = HTTPServer(Application([("/", Hello, {"seen": seen})]))
    server.add_sockets([sock])
    yield port, seen
    server.stop()
    io_loop.run_sync(server.close_all_connections, timeout=5)


async def fetch_through(allow: str, url: str) -> Any:
    resolver = AllowingResolver(PushAllow.parse(allow))
    client = SimpleAsyncHTTPClient(force_instance=True, resolver=resolver)
    try:
        return await client.fetch(url, raise_error=False, follow_redirects=False)
    finally:
        client.close()
        resolver.close()


@pytest.mark.gen_test
async def test_an_address_entry_lets_the_client_reach_loopback(receiver):
    port, seen = receiver
    response = await fetch_through("127.0.0.1", f"http://127.0.0.1:{port}/")
    assert response.code == 200
    assert response.body == b"hello"
    assert seen == [f"127.0.0.1:{port}"]


@pytest.mark.gen_test
async def test_a_listed_name_that_resolves_to_loopback_is_refused_before_any_request(receiver):
    port, seen = receiver
    allow = "localhost"
    url = f"http://localhost:{port}/"
    PushAllow.parse(allow).check_url(url)  # the URL passes; the connection must not
    with pytest.raises(DisallowedAddress) as raised:
        await fetch_through(allow, url)
    assert str(raised.value).startswith("host 'localhost' resolves to ")
    assert "127.0.0.1" in raised.value.addresses
    assert seen == []


@pytest.mark.gen_test
async def test_a_name_reaches_loopback_through_a_network_entry_covering_it(receiver):
    port, seen = receiver
    response = await fetch_through("localhost, 127.0.0.0/8", f"http://localhost:{port}/")
    assert response.code == 200
    assert seen == [f"localhost:{port}"]


@pytest.mark.gen_test
async def test_an_address_entry_on_another_port_does_not_cover_the_connection(receiver):
    port, seen = receiver
    with pytest.raises(DisallowedAddress):
        await fetch_through(f"localhost, 127.0.0.1:{port + 1}", f"http://localhost:{port}/")
    assert seen == []
