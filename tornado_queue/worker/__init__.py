"""The worker runner: `python -m tornado_queue worker MODULE:FUNCTION` runs a function on every
task of a queue, through the HTTP client."""
