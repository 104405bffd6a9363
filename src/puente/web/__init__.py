"""The server-rendered web UI: Jinja2 templates, htmx, sessions, CSRF and security headers."""
