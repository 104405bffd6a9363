"""WhatsApp numbers: onboarding, coexistence sync state and connection health."""
