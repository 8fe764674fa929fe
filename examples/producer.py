"""Put a few tasks on the "emails" queue and show where they are.

    python examples/producer.py [--url http://127.0.0.1:8000]

Every enqueue carries an idempotency key (the client makes one), so a retry after a lost
answer never creates a second task.
"""

from __future__ import annotations

import argparse

from tornado_queue.client import Client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    url = parser.parse_args().url

    with Client(url) as client:
        for number, address in enumerate(
            ["ada@example.com", "alan@example.com", "grace@example.com"]
        ):
            task_id = client.enqueue(
                {"to": address, "subject": f"Welcome #{number}"}, queue="emails"
            )
            print(f"enqueued {task_id} for {address}")
        print("emails queue:", client.stats("emails"))


if __name__ == "__main__":
    main()
