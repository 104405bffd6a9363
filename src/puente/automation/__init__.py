"""Automation: what Puente does by itself when something happens (business hours and away
messages, routing, the knowledge-base bot; workflows next).

Importing `puente.automation.reactions` registers its reactions (`puente.events.react`),
which run inside the transaction that stored the message: an away message queued in the
outbox, an assignment or a bot's answer commits with the message or not at all. Every
process that processes webhooks imports it (see `puente.ingest.process`). The package
itself imports nothing: its tables are registered with every process's models
(`puente.db.models`, imported by the runtime), and importing the reactions from there
would import the runtime's own modules before the runtime exists.
"""
