"""The REST API v1 (`/api/v1`), documented at /api/v1/openapi.json."""
