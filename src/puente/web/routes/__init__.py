"""The web UI's routers: sign-in, settings and the start page."""
