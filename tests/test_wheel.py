"""The package runs anywhere: the wheel built from this checkout, installed with its
dependencies in a new virtual environment outside the repository, starts `puente demo` and
`puente worker` from a home directory with nothing of Puente's in it, and serves the
front-end libraries, migrations and translations it carries.

One build and one environment for the module. The versions are requirements.lock's (the
constraint), which `make install` put in uv's cache, so the install takes about a second
(files are linked from the cache). Not `--offline`: uv's offline mode refuses cached
wheels whose registry answer must be revalidated, which failed the install on a machine
whose cache was filled the same day; revalidating asks the registry, which `make install`
needs anyway."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from puente.sandbox.phone import ASSETS
from puente.web.mount import VENDOR_FILES
from tests.conftest import free_port
from tests.waiting import wait_until

# What these processes run on does not change with the suite's engine: one leg runs them.
pytestmark = [pytest.mark.one_leg, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent
UV = ROOT / ".venv-tools" / "bin" / "uv"


def uv(*args: str, cwd: Path) -> None:
    command = [str(UV) if UV.is_file() else "uv", *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"


class Installed:
    def __init__(self, wheel: Path, venv: Path, home: Path) -> None:
        self.wheel = wheel
        self.venv = venv
        self.home = home
        self.package = next((venv / "lib").glob("python3*/site-packages/puente"))

    def env(self, data_dir: Path) -> dict[str, str]:
        """A service's environment: nothing of the checkout or of the suite's settings."""
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("PUENTE_", "PYTHON", "VIRTUAL_ENV"))
        }
        env.update(
            HOME=str(self.home),
            PUENTE_DATA_DIR=str(data_dir),
            PUENTE_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self, *args: str, data_dir: Path, output: Path) -> subprocess.Popen[bytes]:
        with output.open("wb") as sink:
            return subprocess.Popen(
                [str(self.venv / "bin" / "puente"), *args],
                cwd=self.home,
                env=self.env(data_dir),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    # The sdist first, then the wheel from it (uv build's way, and a release's): both
    # must carry the front-end libraries setup.py copies from node_modules.
    uv("build", "--quiet", "--out-dir", str(work / "dist"), str(ROOT), cwd=work)
    (wheel,) = (work / "dist").glob("puente-*.whl")
    uv("venv", "--quiet", "--python", sys.executable, str(work / "venv"), cwd=work)
    uv(
        "pip",
        "install",
        "--quiet",
        "--python",
        str(work / "venv" / "bin" / "python"),
        "--constraint",
        str(ROOT / "requirements.lock"),
        str(wheel),
        cwd=work,
    )
    home = work / "home"
    home.mkdir()
    return Installed(wheel, work / "venv", home)


def test_the_wheel_carries_the_migrations_catalogues_and_front_end_libraries(
    installed: Installed,
) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    source = ROOT / "src"
    migrations = {
        str(path.relative_to(source))
        for path in (source / "puente/db/migrations").rglob("*")
        if path.suffix in (".py", ".mako")
    }
    assert migrations <= names
    for lang in ("en", "es"):
        assert f"puente/locale/{lang}/LC_MESSAGES/messages.mo" in names
    vendored = {f"puente/web/static/vendor/{name}" for name in VENDOR_FILES}
    vendored |= {f"puente/sandbox/static/vendor/{name}" for name in ASSETS}
    assert vendored <= names
    # Not committed: the checkout has no copies, it serves node_modules.
    assert not (source / "puente/web/static/vendor").exists()
    # The installed Puente is the environment's, not the checkout's.
    where = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import puente; print(puente.__file__)"],
        cwd=installed.home,
        env=installed.env(installed.home / "unused"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).parent == installed.package


def _output(path: Path, pattern: str) -> re.Match[str] | None:
    return re.search(pattern, path.read_text(errors="replace"))


@pytest.fixture
def demo(installed: Installed, tmp_path: Path) -> Iterator[tuple[str, str]]:
    port, sandbox_port = free_port(), free_port()
    output = tmp_path / "demo.log"
    proc = installed.start(
        "demo",
        "--port",
        str(port),
        "--sandbox-port",
        str(sandbox_port),
        "--no-traffic",
        "--chats",
        "2",
        "--messages",
        "2",
        data_dir=tmp_path / "data",
        output=output,
    )
    try:
        wait_until(
            lambda: _output(output, r"Sign in:") or proc.poll() is not None,
            seconds=180,
            what="puente demo to print its sign-in",
        )
        assert proc.poll() is None, output.read_text()
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sandbox_port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_demo_from_the_home_directory_serves_pages_in_spanish_and_the_packaged_libraries(
    installed: Installed, demo: tuple[str, str]
) -> None:
    url, sandbox = demo
    login = httpx.get(url + "/login?lang=es", headers={"accept": "text/html"})
    assert login.status_code == 200
    assert "Iniciar sesión" in login.text  # the Spanish catalogue the wheel carries
    for name in VENDOR_FILES:
        served = httpx.get(f"{url}/static/vendor/{name}")
        assert served.status_code == 200, name
        assert served.headers["content-type"].startswith("text/javascript")
        assert served.content == (installed.package / "web/static/vendor" / name).read_bytes()
    assert "htmx" in httpx.get(url + "/static/vendor/htmx.min.js").text

    phone = httpx.get(sandbox + "/_sandbox/phone", timeout=30)
    assert phone.status_code == 200
    for name in ASSETS:
        assert f'src="/_sandbox/static/{name}"' in phone.text
        served = httpx.get(f"{sandbox}/_sandbox/static/{name}", timeout=30)
        assert served.status_code == 200, name
        assert served.content == (installed.package / "sandbox/static/vendor" / name).read_bytes()
    assert list(installed.home.iterdir()) == []  # nothing written where it was started


def test_worker_from_the_home_directory_creates_a_new_database_from_the_packaged_migrations(
    installed: Installed, tmp_path: Path
) -> None:
    output = tmp_path / "worker.log"
    proc = installed.start("worker", data_dir=tmp_path / "data", output=output)
    try:
        wait_until(
            lambda: _output(output, r"running \d+ workers") or proc.poll() is not None,
            seconds=120,
            what="puente worker to start",
        )
        assert proc.poll() is None, output.read_text()
    finally:
        proc.terminate()
        status = proc.wait(30)
    assert status == 0, output.read_text()
    assert "new database: created its schema" in output.read_text()
    assert list(installed.home.iterdir()) == []
