"""The wheel installed outside the checkout: no dev dependency, shipped migrations and watchlists,
``.env``, ``archive/`` and ``logs/`` in the working directory, no top-level ``scripts`` package.

Offline: the wheel is built with this interpreter's setuptools (no build isolation, no index) and
installed without dependencies into a fresh virtualenv that reads them from this one's site-packages
(a ``.pth`` line: that directory's own ``.pth`` files, the editable KapMan among them, are not run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kapman import __version__
from tests.support import database

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout's files (builds write into it; the checkout stays clean)."""
    source = tmp_path_factory.mktemp("source")
    for name in _tracked_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    return source


def new_venv(home: Path) -> Path:
    """A virtualenv reading its dependencies from this one's site-packages; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True, timeout=60)
    purelib = Path(subprocess.run([str(home / "bin" / "python"), "-c",
                                   "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return home / "bin" / "python"


def pip_install(python: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """pip's output of the install."""
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "--no-index", "--no-build-isolation", *args], capture_output=True, text=True, timeout=180,
                          env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the copy."""
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(dist), str(source)], capture_output=True, text=True, timeout=180)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "deprecat" not in (built.stdout + built.stderr).lower(), built.stderr
    return next(dist.glob("kapman-*.whl"))


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("venv") / "venv"
    pip_install(new_venv(home), str(wheel))
    return home


@pytest.fixture
def scratch(admin_url: str) -> Iterator[str]:
    url = database.create_scratch(admin_url, "install_")
    try:
        yield url
    finally:
        database.drop_scratch(admin_url, url)


def clean_env(venv: Path, cwd: Path) -> dict[str, str]:
    """A user's shell: none of the test session's KAPMAN_* or DATABASE_URL variables."""
    return {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd)}


def kapman(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "kapman"), *args], cwd=cwd, env=clean_env(venv, cwd),
                          capture_output=True, text=True, timeout=180)


def test_the_wheel_ships_migrations_and_watchlists_and_no_top_level_scripts(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"kapman", f"kapman-{__version__}.dist-info"}, tops
    migrations = sorted(p.name for p in (ROOT / "db" / "migrations").glob("*.sql"))
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("kapman/_shipped/migrations/")) == migrations
    assert "kapman/_shipped/watchlists/mvp.txt" in names
    assert "kapman/_scripts/db/a5_deterministic_rebuild.py" in names
    assert "moto" not in zipfile.ZipFile(wheel).read(f"kapman-{__version__}.dist-info/METADATA").decode().split(
        "Provides-Extra: sandbox")[0]


def test_installed_kapman_runs_outside_the_checkout(venv: Path, scratch: str, tmp_path: Path) -> None:
    work = tmp_path / "desk"
    work.mkdir()
    assert kapman(venv, work, "--version").stdout.strip() == f"kapman {__version__}"

    rebuilt = kapman(venv, work, "rebuild", "--yes", "--db-url", scratch)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "migrations directory not found" not in rebuilt.stderr
    assert "fingerprint" in rebuilt.stdout

    # .env of the working directory, not of site-packages
    (work / ".env").write_text(f"DATABASE_URL={scratch}\n")
    status = kapman(venv, work, "status", "--json")
    assert status.returncode in (1, 2), status.stderr            # an empty warehouse is not OK
    assert '"checks"' in status.stdout and "Traceback" not in status.stderr
    # its fixes are commands that exist here: no scripts package is installed (they read "python -m scripts...")
    assert "python -m scripts" not in status.stdout and '"fix": "kapman tickers --force"' in status.stdout

    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import kapman, kapman.config as c; s = c.load_settings(); "
                            "import kapman.archive.store as a; "
                            "print(kapman.__file__); print(c.PROJECT_ROOT); print(a.location_of(s)); "
                            "print(s.watchlists_dir); import kapman.ops.logfile as l; print(l.DEFAULT_PATH)"],
                           cwd=work, env=clean_env(venv, work), capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert where[0].startswith(str(venv)), where
    # the archive of this warehouse (its database and server) under the working directory's archive/
    assert where[1] == str(work.resolve()) and Path(where[2]).parent == work.resolve() / "archive"
    assert Path(where[3], "mvp.txt").is_file() and where[3].startswith(str(venv))   # the shipped watchlists
    assert where[4] == str(work.resolve() / "logs" / "nightly.log")


def test_scripts_still_run_from_the_checkout() -> None:
    done = subprocess.run([sys.executable, "-m", "scripts.db.a5_deterministic_rebuild", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "db/migrations" in done.stdout


def test_the_sandbox_without_moto_is_one_line(tmp_path: Path) -> None:
    """A plain install has no moto: the sandbox says which extra brings it, without a traceback."""
    code = ("import sys; sys.modules['moto'] = None; from kapman.console import main; "
            "sys.exit(main(['sandbox', 'serve']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "needs moto" in done.stderr and "pip install 'kapman[sandbox]'" in done.stderr


def test_an_editable_install_runs_its_scripts_from_anywhere(source: Path, tmp_path: Path) -> None:
    """``pip install -e`` (./dev.sh setup): the commands find the checkout's ``scripts`` from any directory."""
    home = tmp_path / "editable"
    said = pip_install(new_venv(home), "-e", str(source), env={**os.environ, "PYTHONWARNINGS": "ignore"})  # as dev.sh
    assert not [line for line in said.splitlines() if "Warning" in line or "deprecat" in line.lower()], said
    done = subprocess.run([str(home / "bin" / "kapman"), "status", "--help"], cwd=tmp_path,
                          env=clean_env(home, tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: kapman status")
