"""Random identifiers: task ids (UUID version 4 text), lease ids and request ids."""

from __future__ import annotations

import os

# The variant digit of a version 4 UUID is 8, 9, a or b: two of its bits are fixed.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def task_id() -> str:
    """A random UUID4 in its canonical text form, as `str(uuid.uuid4())` gives, from the same
    OS randomness (122 random bits) at about a third of the cost: it is made for every task."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def lease_id() -> str:
    """96 random bits: unguessable, so only the consumer given a lease can act under it."""
    return os.urandom(12).hex()


def request_id() -> str:
    """128 random bits as hex, for requests that came without an X-Request-ID."""
    return os.urandom(16).hex()
