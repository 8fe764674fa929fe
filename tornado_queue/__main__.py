"""`python -m tornado_queue COMMAND [ARGS]`: see `tornado_queue.cli`."""

from __future__ import annotations

import sys

from tornado_queue.cli import main

if __name__ == "__main__":
    sys.exit(main())
