"""The outage log: one line when the store stops answering, one when it is back."""

from __future__ import annotations

import logging

from tornado_queue.errors import OutcomeUnknown, StoreUnavailable
from tornado_queue.storage.outage import OutageLog


def test_an_outage_is_one_warning_with_its_cause_and_one_line_with_its_count(caplog):
    outage = OutageLog()
    with caplog.at_level(logging.INFO, logger="tornado_queue.store"):
        outage.answered()  # nothing to say while the store answers
        outage.failed(StoreUnavailable(ConnectionError("Connection refused")))
        outage.failed(OutcomeUnknown(TimeoutError("Timeout reading from socket")))
        outage.failed(StoreUnavailable(ConnectionError("Connection refused")))
        assert outage.down
        outage.answered()
        outage.answered()

    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert "stopped answering (ConnectionError: Connection refused)" in lines[0]
    assert "answering again" in lines[1] and "store calls failed meanwhile: 3" in lines[1]
    assert not outage.down


def test_a_second_outage_counts_from_zero(caplog):
    outage = OutageLog()
    outage.failed(StoreUnavailable(OSError("disk I/O error")))
    outage.answered()
    with caplog.at_level(logging.INFO, logger="tornado_queue.store"):
        outage.failed(StoreUnavailable(OSError("disk I/O error")))
        outage.answered()

    assert "store calls failed meanwhile: 1" in caplog.records[-1].getMessage()
