"""The asyncio client: a producer and a consumer in one event loop.

    python examples/async_client.py [--url http://127.0.0.1:8000]

The consumer long-polls (waits up to 5 s for a task), completes what it gets with a result,
and stops when the queue stays empty.
"""

from __future__ import annotations

import argparse
import asyncio

from tornado_queue.client import AsyncClient


async def produce(client: AsyncClient, count: int) -> None:
    ids = await client.enqueue_many([{"n": n} for n in range(count)], queue="squares")
    print(f"enqueued {len(ids)} tasks in one request")


async def consume(client: AsyncClient) -> int:
    done = 0
    while (task := await client.dequeue(queue="squares", wait=5)) is not None:
        await client.complete(task, result={"square": task.payload["n"] ** 2})
        done += 1
    return done


async def main(url: str) -> None:
    client = AsyncClient(url)
    consumer = asyncio.create_task(consume(client))
    await produce(client, 5)
    print(f"completed {await consumer} tasks")
    print("squares queue:", await client.stats("squares"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    asyncio.run(main(parser.parse_args().url))
