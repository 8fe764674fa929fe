"""Push signatures, checked with an independent Standard Webhooks implementation (the
`standardwebhooks` package): what receivers will run to verify pushes."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tornado_queue.limits import PUSH_ROTATION_OVERLAP_SECONDS
from tornado_queue.models import PushTarget
from tornado_queue.server.push.signing import (
    new_secret,
    signature,
    signature_header,
    webhook_headers,
)

BODY = b'{"id":"t1","status":"processing","payload":{"text":"h\xc3\xa9llo"}}'
MESSAGE_ID = "01JTASKIDTASKIDTASKIDTASKI"


def test_a_new_secret_is_whsec_and_the_base64_of_24_random_bytes():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24
    assert new_secret() != secret


def test_the_signature_is_the_one_the_standard_computes():
    secret = new_secret()
    moment = 1_790_000_000
    expected = Webhook(secret).sign(MESSAGE_ID, datetime.fromtimestamp(moment, UTC), BODY)
    assert signature(secret, MESSAGE_ID, moment, BODY) == expected
    assert expected.startswith("v1,")


def test_the_signature_covers_id_timestamp_and_body():
    secret = new_secret()
    base = signature(secret, MESSAGE_ID, 1_790_000_000, BODY)
    assert signature(secret, MESSAGE_ID + "x", 1_790_000_000, BODY) != base
    assert signature(secret, MESSAGE_ID, 1_790_000_001, BODY) != base
    assert signature(secret, MESSAGE_ID, 1_790_000_000, BODY + b" ") != base
    assert signature(new_secret(), MESSAGE_ID, 1_790_000_000, BODY) != base


def test_headers_made_with_the_current_secret_verify():
    target = PushTarget(url="https://receiver.internal/", secret=new_secret())
    now = time.time()
    headers = webhook_headers(target, MESSAGE_ID, BODY, now)
    assert headers["webhook-id"] == MESSAGE_ID
    assert headers["webhook-timestamp"] == str(int(now))
    assert " " not in headers["webhook-signature"]
    assert Webhook(target.secret).verify(BODY, headers) == {
        "id": "t1",
        "status": "processing",
        "payload": {"text": "héllo"},
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(target.secret).verify(BODY + b" ", headers)


def rotated(seconds_ago: float, now: float) -> PushTarget:
    return PushTarget(
        url="https://receiver.internal/",
        secret=new_secret(),
        previous_secret=new_secret(),
        rotated_at=now - seconds_ago,
    )


def test_during_the_overlap_both_secrets_verify_the_same_header():
    now = time.time()
    for seconds_ago in (0, 3600, PUSH_ROTATION_OVERLAP_SECONDS - 1):
        target = rotated(seconds_ago, now)
        headers = webhook_headers(target, MESSAGE_ID, BODY, now)
        new, old = headers["webhook-signature"].split(" ")
        timestamp = int(headers["webhook-timestamp"])
        assert new == signature(target.secret, MESSAGE_ID, timestamp, BODY)
        assert old == signature(target.previous_secret, MESSAGE_ID, timestamp, BODY)
        Webhook(target.secret).verify(BODY, headers)
        Webhook(target.previous_secret).verify(BODY, headers)


def test_after_24_hours_only_the_new_secret_signs():
    now = time.time()
    for seconds_ago in (PUSH_ROTATION_OVERLAP_SECONDS, PUSH_ROTATION_OVERLAP_SECONDS * 3):
        target = rotated(seconds_ago, now)
        headers = webhook_headers(target, MESSAGE_ID, BODY, now)
        assert headers["webhook-signature"] == signature(target.secret, MESSAGE_ID, int(now), BODY)
        Webhook(target.secret).verify(BODY, headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(target.previous_secret).verify(BODY, headers)


def test_a_previous_secret_without_a_rotation_time_is_not_used():
    target = PushTarget(
        url="https://receiver.internal/", secret=new_secret(), previous_secret=new_secret()
    )
    header = signature_header(target, MESSAGE_ID, 1_790_000_000, BODY, 1_790_000_000.0)
    assert header == signature(target.secret, MESSAGE_ID, 1_790_000_000, BODY)
