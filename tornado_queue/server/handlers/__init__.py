"""HTTP handlers: thin adapters from requests to store calls."""
