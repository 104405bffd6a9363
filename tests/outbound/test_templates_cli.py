"""`puente templates list|sync|create|delete`, run as a real command against the test
database and Puente's Meta sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from puente.config import Settings
from puente.db.session import Database
from puente.secrets import secret_box
from tests.command import Ran, environment, run_puente
from tests.factories import make_channel, make_workspace
from tests.graph_sandbox import TOKEN, start_graph_sandbox
from tests.outbound.test_templates_rules import utility


def puente(settings: Settings, graph_url: str, *args: str) -> Ran:
    return run_puente(environment(settings, PUENTE_GRAPH_BASE_URL=graph_url), *args)


def test_templates_cli(
    settings: Settings, db: Database, live_server_factory: Any, tmp_path: Path
) -> None:
    graph = start_graph_sandbox(live_server_factory)
    waba = graph.add_number()["waba_id"]
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        channel = make_channel(session, ws, waba_id=waba)
        channel.access_token_encrypted = secret_box(settings).encrypt(TOKEN)
    graph.add_template(
        waba,
        rejected="INVALID_FORMAT",
        name="bienvenida",
        language="es",
        category="UTILITY",
        components=[{"type": "BODY", "text": "Bienvenido"}],
    )

    synced = puente(settings, graph.url, "templates", "sync", "-w", "tienda")
    assert synced.returncode == 0, synced.stderr
    assert "1 new" in synced.stdout

    listed = puente(settings, graph.url, "templates", "list", "-w", "tienda")
    assert "bienvenida  es  UTILITY  REJECTED  (INVALID_FORMAT)" in listed.stdout

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**utility(), "name": "Mal Nombre", "language": "xx"}))
    refused = puente(settings, graph.url, "templates", "create", "-w", "tienda", "-f", str(bad))
    assert refused.returncode == 1
    assert "- name: the name may only hold lowercase letters" in refused.stderr
    assert "- language: 'xx' is not a language" in refused.stderr

    good = tmp_path / "good.json"
    good.write_text(json.dumps(utility()))
    created = puente(settings, graph.url, "templates", "create", "-w", "tienda", "-f", str(good))
    assert created.returncode == 0, created.stderr
    assert "order_shipped (es_MX) created" in created.stdout and "PENDING" in created.stdout
    template_id = created.stdout.split("with id ")[1].split(":")[0]

    deleted = puente(settings, graph.url, "templates", "delete", template_id, "-w", "tienda")
    assert deleted.returncode == 0, deleted.stderr
    assert [t["name"] for t in graph.templates(waba)] == ["bienvenida"]
    missing = puente(settings, graph.url, "templates", "delete", template_id, "-w", "tienda")
    assert missing.returncode == 1
    assert "no template" in missing.stderr
