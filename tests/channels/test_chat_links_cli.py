"""`puente channels link add|list|qr` against the test database."""

from __future__ import annotations

from pathlib import Path

import segno

from puente.config import Settings
from puente.db.session import Database
from tests.channels.qr_images import PNG_SIGNATURE, png_modules, svg_modules
from tests.factories import make_channel, make_workspace
from tests.test_cli_errors import Outcome, puente_env, run_puente


def puente(settings: Settings, *args: str) -> Outcome:
    return run_puente(list(args), puente_env(settings))


def test_add_list_and_write_the_qr_code(settings: Settings, db: Database, tmp_path: Path) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Panadería Sol")
        channel = str(make_channel(session, ws, display_phone_number="573001112233").id)

    def run(*args: str) -> str:
        outcome = puente(settings, *args)
        assert outcome.status == 0, outcome.output
        return outcome.output

    where = ["--workspace", "Panadería Sol", "--channel", channel]
    added = run("channels", "link", "add", *where, "--name", "Bolsa de pan", "--text", "Hola")
    link_id, code = added.split()[2], added.split()[3].strip("():")
    url = f"https://wa.me/573001112233?text=Hola%20%28ref%3A%20{code}%29"
    assert added.strip().endswith(url)
    assert run("channels", "link", "list", *where).split("\t") == [
        link_id, code, "0", "Bolsa de pan", url + "\n"
    ]  # fmt: skip

    expected = [[bool(v) for v in row] for row in segno.make(url, error="m").matrix]
    png, svg = tmp_path / "bolsa.png", tmp_path / "bolsa.svg"
    run("channels", "link", "qr", link_id, *where, "-o", str(png), "--scale", "4")
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert png_modules(png.read_bytes(), scale=4) == expected
    run("channels", "link", "qr", link_id, *where, "--output", str(svg))
    assert svg_modules(svg.read_bytes()) == expected


def test_mistakes_end_in_one_line(settings: Settings, db: Database, tmp_path: Path) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Tienda")
        channel = str(make_channel(session, ws).id)
    where = ["--workspace", "Tienda", "--channel", channel]
    for args, words in (
        (["add", *where, "--name", "Largo", "--text", "x" * 301], "longer than 300"),
        (["add", "--workspace", "Tienda", "--channel", "999999", "--name", "x"], "no channel"),
        (["qr", "1", *where, "-o", str(tmp_path / "q.gif")], "must end in .svg or .png"),
        (["qr", "12345", *where, "-o", str(tmp_path / "q.svg")], "no chat link 12345"),
    ):
        outcome = puente(settings, "channels", "link", *args)
        assert outcome.status == 2, outcome.output
        assert words in outcome.output and "Traceback" not in outcome.output
