"""Identifiers: task ids are canonical random UUID4s, lease and request ids random hex."""

from __future__ import annotations

import re
import uuid

from tornado_queue import ids


def test_task_ids_are_canonical_version_4_uuids():
    for _ in range(2000):
        text = ids.task_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_task_ids_use_every_variant_digit_and_do_not_repeat():
    made = [ids.task_id() for _ in range(2000)]

    assert {text[19] for text in made} == set("89ab")
    assert len(set(made)) == len(made)


def test_lease_and_request_ids_are_random_hex_of_their_size():
    assert re.fullmatch(r"[0-9a-f]{24}", ids.lease_id())
    assert re.fullmatch(r"[0-9a-f]{32}", ids.request_id())
    assert len({ids.lease_id() for _ in range(1000)}) == 1000
