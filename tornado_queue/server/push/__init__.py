"""Push delivery: the servers POST a push queue's tasks to its URL, signed as Standard Webhooks."""
