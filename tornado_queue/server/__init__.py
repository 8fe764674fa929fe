"""The HTTP server: the application and its handlers, long-polling, auth and limits,
metrics, the OpenAPI document, the `--workers` simulation, and the process that serves them."""
