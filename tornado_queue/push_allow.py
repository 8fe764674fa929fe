"""Where push URLs may point (`--push-allow`): the check of a URL when a queue's `push` setting
is made, and the check of every address the pusher connects to (so that a host name listed for
a public receiver cannot be made to resolve to the server's own network later).

Entries are host names (`receiver.internal`), `host:port`, IP addresses (`10.0.0.5`, `::1`,
`[::1]:8080`) and CIDR networks (`10.0.0.0/8`, `fd00::/8`). A host-name entry matches that exact
name; an IP or CIDR entry matches a URL whose host is an IP literal inside it. An entry without a
port matches every port.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tornado.httputil import split_host_and_port
from tornado.netutil import DefaultLoopResolver, Resolver

from tornado_queue.errors import ValidationError, printable
from tornado_queue.limits import MAX_PUSH_URL_CHARS

SHOWN_URL_CHARS = 200
SHOWN_ADDRESSES = 3
DEFAULT_PORTS = {"http": 80, "https": 443}
URL_LABEL = "setting 'push.url'"

PUSH_OFF = (
    "push is off: start the server with --push-allow (or TQ_PUSH_ALLOW) listing the host names "
    "or networks that push URLs may target"
)
ACCEPTED = (
    "a host name, host:port, IP address or CIDR network, e.g. receiver.internal, "
    "receiver.internal:8443, 10.0.0.5, [::1]:8080, 10.0.0.0/8, fd00::/8"
)
LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
VISIBLE_ASCII = re.compile(r"[\x21-\x7e]*")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """One entry: either a host `name` (lowercase) or a `network`, on `port` or any port (None)."""

    name: str | None = None
    network: Network | None = None
    port: int | None = None

    def allows_port(self, port: int) -> bool:
        return self.port is None or self.port == port


@dataclass(frozen=True, slots=True)
class PushAllow:
    """The parsed `--push-allow` list; empty means push is off."""

    entries: tuple[AllowEntry, ...] = ()

    @classmethod
    def parse(cls, text: str) -> PushAllow:
        """The comma-separated flag value; ValueError names a bad entry and what is accepted."""
        return cls(tuple(_entry(part.strip()) for part in text.split(",") if part.strip()))

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    def check_url(self, url: str) -> None:
        """Raise ValidationError unless `url` is one a push may target."""
        if not self.enabled:
            raise ValidationError(PUSH_OFF)
        host, port = _host_and_port(url)
        if not self._lists(host, port):
            shown = url if len(url) <= SHOWN_URL_CHARS else url[:SHOWN_URL_CHARS] + "…"
            raise ValidationError(
                f"{URL_LABEL} '{printable(shown)}' is not allowed: --push-allow does not list "
                f"its host '{printable(host[:SHOWN_URL_CHARS])}' on port {port}"
            )

    def address_allowed(self, host: str, port: int, address: str) -> bool:
        """Whether the pusher may connect to `address` (one that `host` resolved to) on `port`:
        inside a listed IP/CIDR entry, or reached through a listed host name and public."""
        try:
            ip = _plain(ipaddress.ip_address(address))
        except ValueError:
            return False
        return self._networks_hold(ip, port) or (_public(ip) and self._names_hold(host, port))

    def _lists(self, host: str, port: int) -> bool:
        """Whether an entry matches a URL's host (as urlsplit gives it: lowercase, no brackets)."""
        try:
            ip = _plain(ipaddress.ip_address(host))
        except ValueError:
            return self._names_hold(host, port)
        return self._networks_hold(ip, port)

    def _networks_hold(self, ip: Address, port: int) -> bool:
        return any(
            entry.network is not None and ip in entry.network and entry.allows_port(port)
            for entry in self.entries
        )

    def _names_hold(self, host: str, port: int) -> bool:
        name = host.lower()
        return any(entry.name == name and entry.allows_port(port) for entry in self.entries)


class DisallowedAddress(OSError):
    """Every address a push host resolved to is one `--push-allow` does not allow."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        shown = ", ".join(addresses[:SHOWN_ADDRESSES])
        if len(addresses) > SHOWN_ADDRESSES:
            shown += f" and {len(addresses) - SHOWN_ADDRESSES} more"
        super().__init__(
            f"host '{printable(host[:SHOWN_URL_CHARS])}' resolves to {shown}, "
            "which --push-allow does not allow"
        )
        self.host = host
        self.addresses = addresses


class AllowingResolver(Resolver):
    """A resolver that hands a connection only the addresses `PushAllow.address_allowed`
    accepts (the check happens on every connect, so a name re-pointed after its URL was
    accepted is caught), and raises `DisallowedAddress` when none is left.

    Given as `resolver=` to `SimpleAsyncHTTPClient(force_instance=True, ...)`:
    `await client.fetch(request, raise_error=False)` RAISES the `DisallowedAddress` itself
    (it is not a response code, and tornado's fetch raises every other error even with
    raise_error=False), with no request sent. Since it is an OSError, catch it before the other
    connection errors to tell "disallowed" apart. Failing lookups raise as the wrapped resolver
    raises them (socket.gaierror). The client does not close a resolver it was given: call
    `close()` when done.
    """

    def initialize(self, allow: PushAllow, resolver: Resolver | None = None) -> None:  # type: ignore[override]
        self.allow = allow
        self.resolver = resolver if resolver is not None else DefaultLoopResolver()

    def close(self) -> None:
        self.resolver.close()

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        literal = _literal(host, port, family)
        # An address needs no lookup, nor the trip to the thread pool one takes.
        found = literal if literal is not None else await self.resolver.resolve(host, port, family)
        allowed = [item for item in found if self.allow.address_allowed(host, port, item[1][0])]
        if not allowed:
            raise DisallowedAddress(host, list(dict.fromkeys(str(item[1][0]) for item in found)))
        return allowed


def _literal(host: str, port: int, family: socket.AddressFamily) -> list[tuple[int, Any]] | None:
    """What resolving `host` gives when it is an IP address of the family asked for: that
    address alone. None for a name or another family, which the lookup answers."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    found = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return [(found, (host, port))] if family in (socket.AF_UNSPEC, found) else None


def _plain(ip: Address) -> Address:
    """An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4 address it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _host_and_port(url: str) -> tuple[str, int]:
    """The host (lowercase, no brackets) and port a push to `url` connects to; ValidationError
    when it is not an http(s) URL a push can be sent to."""
    label = URL_LABEL
    if len(url) > MAX_PUSH_URL_CHARS:
        raise ValidationError(f"{label} must be at most {MAX_PUSH_URL_CHARS} characters")
    # urlsplit silently drops tabs and newlines and strips spaces: refuse them instead, so
    # that the URL checked is the URL sent.
    if not VISIBLE_ASCII.fullmatch(url):
        raise ValidationError(
            f"{label} must hold only visible ASCII characters (percent-encode the others)"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        if "Port" in str(error):
            raise ValidationError(f"{label} must have a port from 1 to 65535") from None
        raise ValidationError(f"{label} is not a valid URL: {error}") from None
    if not parts.scheme:
        raise ValidationError(f"{label} must be an absolute URL starting with http(s)://")
    if parts.scheme not in DEFAULT_PORTS:
        raise ValidationError(
            f"{label} must use http or https, got '{printable(parts.scheme[:20])}'"
        )
    if "@" in parts.netloc:
        raise ValidationError(
            f"{label} must not hold a user name or password: send credentials in 'push.headers'"
        )
    if not parts.hostname:
        raise ValidationError(f"{label} must name a host")
    if not _read_alike(parts.netloc, parts.hostname, port):
        shown = printable(parts.netloc[:SHOWN_URL_CHARS])
        raise ValidationError(f"{label} has a malformed host or port: '{shown}'")
    if "#" in url:
        raise ValidationError(f"{label} must not have a fragment (#...)")
    if port == 0:
        raise ValidationError(f"{label} must have a port from 1 to 65535")
    return parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _read_alike(netloc: str, hostname: str, port: int | None) -> bool:
    """Whether Tornado's HTTP client reads the same host and port from `netloc` as urlsplit:
    the host checked must be the host connected to."""
    host, tornado_port = split_host_and_port(netloc)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.lower() == hostname and tornado_port == port


def _public(ip: Address) -> bool:
    """Globally reachable unicast: Python counts multicast (and some reserved ranges) global."""
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def _entry(text: str) -> AllowEntry:
    try:
        return _parse_entry(text)
    except ValueError as error:
        reason = f" ({error})" if str(error) else ""
        raise ValueError(
            f"--push-allow entry '{printable(text[:SHOWN_URL_CHARS])}' is not valid{reason}: "
            f"give {ACCEPTED}"
        ) from None


def _parse_entry(text: str) -> AllowEntry:
    if "://" in text:
        raise ValueError("a URL: list only its host, or host:port")
    if text.startswith("["):  # [IPv6] or [IPv6]:port
        address, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("an IPv6 address in brackets is [address] or [address]:port")
        ip = ipaddress.ip_address(address)
        if not isinstance(ip, ipaddress.IPv6Address):
            raise ValueError("only an IPv6 address goes in brackets")
        return AllowEntry(network=_single(ip), port=_port(rest[1:]) if rest else None)
    if "/" in text:
        return AllowEntry(network=ipaddress.ip_network(text))
    try:
        return AllowEntry(network=_single(ipaddress.ip_address(text)))
    except ValueError:
        pass
    host, colon, port_text = text.partition(":")
    port = _port(port_text) if colon else None
    try:
        return AllowEntry(network=_single(ipaddress.IPv4Address(host)), port=port)
    except ValueError:
        return AllowEntry(name=_host_name(host), port=port)


def _single(ip: Address) -> Network:
    return ipaddress.ip_network(_plain(ip))


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError("a port is a number from 1 to 65535")
    return int(text)


def _host_name(text: str) -> str:
    name = text.lower()
    labels = name.split(".")
    if (
        len(name) > 253
        or not all(LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()  # no top-level domain is numeric: that is an IP address typo
    ):
        raise ValueError("a host name is labels of letters, digits, - and _ between dots")
    return name
