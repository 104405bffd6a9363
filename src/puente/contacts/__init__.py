"""Contacts, their identities per channel, tags and custom fields."""
