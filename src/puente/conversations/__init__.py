"""Conversations, messages, statuses and the customer-service window."""
