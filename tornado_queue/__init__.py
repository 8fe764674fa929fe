"""tornado_queue: an HTTP task queue server on Tornado."""

__version__ = "0.1.0"
