"""Outgoing webhooks: endpoints per workspace, one delivery row per event and endpoint
written in the transaction that caused it (reactions.py), sent after commit by a worker
signed the Standard Webhooks way (worker.py), retried with backoff for up to three days.

Importing `puente.integrations.webhooks.reactions` registers the reactions; every process
that changes data imports it (see `puente.workers.install_workers`)."""
