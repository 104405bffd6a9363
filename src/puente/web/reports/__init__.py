"""The Reports pages' words and formatting (the routes are web/routes/reports.py)."""
