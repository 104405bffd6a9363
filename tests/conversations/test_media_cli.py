"""`puente media retry`, run as a real command against the test database and the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from puente.conversations.media_worker import MediaDownloader, MediaPolicy
from tests.conftest import SECRET_KEY
from tests.conversations.conftest import PNG, World


def puente(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    settings = world.runtime.settings
    env = {
        **os.environ,
        "PUENTE_DATA_DIR": str(settings.data_dir),
        "PUENTE_SECRET_KEY": SECRET_KEY,
        "PUENTE_GRAPH_BASE_URL": settings.graph_base_url,
    }
    if settings.database_url:
        env["PUENTE_DATABASE_URL"] = settings.database_url
    else:
        env.pop("PUENTE_DATABASE_URL", None)
    return subprocess.run(
        [str(Path(sys.executable).parent / "puente"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_retry_brings_back_a_download_that_gave_up(world: World) -> None:
    message = world.customer_sends("image")
    world.faults([503])
    MediaDownloader(world.runtime, MediaPolicy(max_attempts=1)).step()
    assert world.media_of(message.id).state == "failed"

    # Without --failed, a download that gave up stays given up.
    plain = puente(world, "media", "retry", "--run")
    assert plain.returncode == 0, plain.stderr
    assert "0 media download(s) due now" in plain.stdout
    assert world.media_of(message.id).state == "failed"

    result = puente(world, "media", "retry", "--failed", "--run")
    assert result.returncode == 0, result.stderr
    assert "1 media download(s) due now" in result.stdout
    assert "stored: 1" in result.stdout
    media = world.media_of(message.id)
    assert (media.state, media.attempts, media.last_error) == ("stored", 0, None)
    assert world.api.get(f"/media/{media.id}").content == PNG
