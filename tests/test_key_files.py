"""Keys Puente generates in its data directory on first start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys, time
from puente.config import Settings
from puente.secrets import session_secret
start = float(sys.argv[2])
while time.time() < start:
    pass
print(session_secret(Settings(data_dir=sys.argv[1], session_secret=None)))
"""


def test_processes_starting_together_on_a_new_data_directory_share_one_session_key(
    tmp_path: Path,
) -> None:
    # Two web processes started at once on a new data directory: one used to die with
    # FileExistsError while the other wrote the key, so the deployment never came up.
    import time

    start = str(time.time() + 3)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(tmp_path), start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    keys = {out.strip() for out, _ in outputs}
    assert len(keys) == 1
    assert (tmp_path / "session.key").read_text().strip() == keys.pop()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.key"]
