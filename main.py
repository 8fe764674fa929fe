"""Run the tornado_queue server: `python main.py --help` lists the flags."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from tornado_queue.config import Settings
from tornado_queue.server import configure_logging, serve


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings.from_args(argv)
    configure_logging(settings)
    return asyncio.run(serve(settings))


if __name__ == "__main__":
    sys.exit(main())
