"""Reports: facts recorded in the transaction that caused them, daily rollups kept by a
worker and rebuilt on demand, and the queries the report pages, the dashboard and the
API read (docs/decisions/0009-reports.md)."""
