"""Everything Puente sends: the outbox and its per-number lanes, templates, broadcasts."""
