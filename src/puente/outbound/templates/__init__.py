"""Message templates: Meta's rules, the review lifecycle, previews and sent templates as read."""
