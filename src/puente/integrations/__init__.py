"""Integrations: what Puente tells other systems (outgoing webhooks)."""
