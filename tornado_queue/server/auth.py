"""Bearer tokens with roles: the token table, the tokens file, and the one access check.

A token is never stored, logged or echoed: the table keeps the SHA-256 digest of each one, and
every message that must point at a token names its line in the tokens file or its short id
(the first 8 hex digits of that digest), never the token itself.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from tornado_queue.errors import TokenError
from tornado_queue.validation import check_token

__all__ = ["TokenError", "Tokens", "check_token"]

log = logging.getLogger("tornado_queue.lifecycle")


class Role(StrEnum):
    PRODUCER = "producer"
    CONSUMER = "consumer"
    ADMIN = "admin"


ADMIN = frozenset({Role.ADMIN})
PRODUCERS = frozenset({Role.PRODUCER, Role.ADMIN})
CONSUMERS = frozenset({Role.CONSUMER, Role.ADMIN})
ANY_ROLE = frozenset(Role)

BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+)")
REALM = 'Bearer realm="tornado_queue"'


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def token_id(token_digest: bytes) -> str:
    """A short, non-secret name for a token (for messages): 8 hex digits of its digest."""
    return token_digest.hex()[:8]


@dataclass(frozen=True)
class Principal:
    """Who a request is: the role of its token, and the token's short id."""

    role: Role
    token_id: str


class Tokens:
    """The configured tokens, by digest. Empty means auth is off: every route is open."""

    def __init__(self, roles: Mapping[bytes, Role] | None = None) -> None:
        self._roles = dict(roles or {})

    @property
    def enabled(self) -> bool:
        return bool(self._roles)

    def __len__(self) -> int:
        return len(self._roles)

    @classmethod
    def configured(cls, auth_token: str, tokens_file: str) -> Tokens:
        """From `--auth-token` (one admin token) and `--tokens-file`; raises `TokenError`."""
        roles: dict[bytes, Role] = {}
        if auth_token:
            check_token(auth_token, "--auth-token")
            roles[digest(auth_token)] = Role.ADMIN
        if tokens_file:
            for key, (role, line) in read_tokens_file(Path(tokens_file)).items():
                if key in roles and roles[key] != role:
                    raise TokenError(
                        f"{tokens_file}, line {line}: this token is also --auth-token (admin)"
                    )
                roles[key] = role
        return cls(roles)

    def identify(self, token: str) -> Principal | None:
        """The principal of a presented token, or None. Every configured digest is compared,
        in constant time and without stopping at a match, so the time taken tells nothing
        about which token (if any) matched or how much of it was right."""
        presented = digest(token)
        found: Role | None = None
        for key, role in self._roles.items():
            if hmac.compare_digest(presented, key):
                found = role
        return None if found is None else Principal(found, token_id(presented))


def read_tokens_file(path: Path) -> dict[bytes, tuple[Role, int]]:
    """Lines `role token`; blank lines and `#` comments are skipped. Token digest → (role,
    line number). Raises `TokenError` naming the file and line, never the token."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TokenError(f"cannot read the tokens file {path}: {error}") from None
    found: dict[bytes, tuple[Role, int]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}, line {number}"
        fields = line.split()
        if len(fields) != 2:
            raise TokenError(f"{where}: expected 'role token' (two fields), got {len(fields)}")
        role_name, token = fields
        if role_name not in Role.__members__.values():
            roles = ", ".join(Role)
            raise TokenError(f"{where}: the role must be one of {roles}, got {role_name[:20]!r}")
        check_token(token, where)
        key = digest(token)
        if key in found:
            raise TokenError(f"{where}: the same token as line {found[key][1]}")
        found[key] = (Role(role_name), number)
    if not found:
        raise TokenError(f"the tokens file {path} holds no token")
    return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    if not authorization:
        return None
    match = BEARER.fullmatch(authorization.strip())
    return match.group(1) if match else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or "" (every address): assume reachable from elsewhere


def warn_if_open(tokens: Tokens, host: str) -> None:
    """One start-up warning when anyone on the network may use the API."""
    if not tokens.enabled and not is_loopback(host):
        log.warning(
            "no --auth-token or --tokens-file: the API on %s is open to anyone who can reach it",
            host or "every address",
        )


def describe(roles: Iterable[Role]) -> str:
    return ", ".join(role.value for role in Role if role in set(roles))
