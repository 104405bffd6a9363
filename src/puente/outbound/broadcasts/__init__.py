"""Broadcasts: audiences, per-recipient values, queueing into the outbox, tiers and costs."""
