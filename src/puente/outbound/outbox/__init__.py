"""The outbox: every outgoing message as a durable row, its per-number lanes, pacing and retries."""
