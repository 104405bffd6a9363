"""Webhook ingestion: verify, store raw, acknowledge; then process in workers."""
