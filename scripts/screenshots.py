"""Regenerate the pictures in docs/screenshots/ from the browser walks, so the docs show
what the code does today.

    .venv/bin/python scripts/screenshots.py        # the walks of tests/e2e/test_walk.py
    .venv/bin/python scripts/screenshots.py --all  # also the other browser tests' pictures

The walks sign in to the demo's seeded world as the owner, a supervisor and an agent and
save each page they reach (English on a laptop `name.png`, Spanish `name-es.png`, on a
phone `name-phone.png` and `name-phone-es.png`). `--all` first runs the browser tests that
save the rest (assignment and notes, the template picker, the composer's extras, the
notification bell, the dashboard), then the walks, whose pictures of the same pages win.
The tests run on SQLite; a failing test leaves its pictures up to the point where it stopped, and the
script ends with pytest's exit code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "docs" / "screenshots"
WALKS = ["tests/e2e/test_walk.py"]
OTHERS = [
    "tests/e2e/test_inbox_live.py::test_the_inbox_walk",
    "tests/e2e/test_inbox_composer.py",
    "tests/e2e/test_notifications_browser.py",
    "tests/e2e/test_dashboard_browser.py",
]


def emoji_font_missing() -> bool:
    """Without a colour emoji font, headless Chromium draws 📱, 📎 and the emoji bar as
    empty boxes; the pictures would show them so (Debian: fonts-noto-color-emoji)."""
    try:
        fonts = subprocess.run(["fc-list"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return False
    return "emoji" not in fonts.lower()


def run(files: list[str]) -> int:
    env = {**os.environ, "PUENTE_SCREENSHOTS": str(FOLDER), "PUENTE_TEST_DB": "sqlite"}
    command = [sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider"]
    print("$ PUENTE_SCREENSHOTS=docs/screenshots " + " ".join(command[1:]), flush=True)
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--all",
        action="store_true",
        help="also run the other browser tests that save pictures for docs/inbox.md",
    )
    args = parser.parse_args(argv)
    FOLDER.mkdir(parents=True, exist_ok=True)
    if emoji_font_missing():
        print(
            "warning: no emoji font (fc-list): emoji will show as empty boxes in the pictures",
            file=sys.stderr,
        )
    code = run(OTHERS) if args.all else 0
    code = run(WALKS) or code
    saved = sorted(p.name for p in FOLDER.glob("*.png"))
    print(f"{len(saved)} pictures in {FOLDER.relative_to(ROOT)}: {', '.join(saved)}")
    if code:
        print("Some tests failed: their pictures stop where they did.", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
