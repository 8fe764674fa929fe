"""Run the tornado_queue server: `python main.py --help` lists the flags."""

from __future__ import annotations

import sys

from tornado_queue.server.serve import main

if __name__ == "__main__":
    sys.exit(main())
