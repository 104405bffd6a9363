#!/usr/bin/env bash
# Until Puente's first release the schema lives in one initial migration, regenerated
# from the models. After the first release, add ordinary revisions instead.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f src/puente/db/migrations/versions/*.py
tmp=$(mktemp -d)
PUENTE_DATABASE_URL="sqlite:///$tmp/empty.sqlite3" .venv/bin/alembic revision --autogenerate -m "initial schema" --rev-id 0001 >/dev/null
.venv/bin/ruff format -q src/puente/db/migrations/versions/ || true
.venv/bin/ruff check -q --fix src/puente/db/migrations/versions/ || true
rm -rf "$tmp"
ls src/puente/db/migrations/versions/
