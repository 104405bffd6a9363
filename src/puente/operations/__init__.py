"""Running Puente: GET /metrics, /healthz and /readyz, and the request middleware that
times requests by route and gives each one an id for the logs."""
