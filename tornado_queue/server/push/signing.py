"""Push signatures as the Standard Webhooks spec defines them: `webhook-signature: v1,<base64
HMAC-SHA256>` over f"{id}.{timestamp}.{body}", keyed with the secret's base64-decoded bytes.

For `limits.PUSH_ROTATION_OVERLAP_SECONDS` after a rotation the header carries the previous
secret's signature too (new first), so receivers can switch secrets without losing a push.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from tornado_queue.limits import PUSH_ROTATION_OVERLAP_SECONDS
from tornado_queue.models import PushTarget

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


def new_secret() -> str:
    """A fresh signing secret: "whsec_" and the base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,` signature of one message with one secret."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(
    target: PushTarget, message_id: str, timestamp: int, body: bytes, now: float
) -> str:
    """The `webhook-signature` value: the current secret's signature, then, while a rotation's
    overlap lasts, a space and the previous secret's."""
    signatures = [signature(target.secret, message_id, timestamp, body)]
    if (
        target.previous_secret
        and target.rotated_at is not None
        and target.rotated_at + PUSH_ROTATION_OVERLAP_SECONDS > now
    ):
        signatures.append(signature(target.previous_secret, message_id, timestamp, body))
    return " ".join(signatures)


def webhook_headers(target: PushTarget, message_id: str, body: bytes, now: float) -> dict[str, str]:
    """The three Standard Webhooks headers of one push of `body` at `now` (epoch seconds)."""
    timestamp = int(now)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(target, message_id, timestamp, body, now),
    }
