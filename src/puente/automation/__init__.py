"""Automation: what Puente does by itself when something happens (business hours and away
messages, routing, the knowledge-base bot; workflows next).

Importing this package registers its reactions (`puente.events.react`), which run inside
the transaction that stored the message: an away message queued in the outbox, an
assignment or a bot's answer commits with the message or not at all. Every process that
processes webhooks imports it (see `puente.ingest.process`).
"""

from puente.automation import reactions as _reactions  # noqa: F401  (registers them)
