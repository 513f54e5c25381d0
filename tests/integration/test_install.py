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
    dashboards = sorted(p.name for p in (ROOT / "docs" / "runbooks").glob("*.sql"))
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("kapman/_shipped/dashboards/")) == dashboards
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


def without_moto(*args: str) -> subprocess.CompletedProcess[str]:
    """``kapman ARGS`` where moto cannot be imported, as in a plain install."""
    code = f"import sys; sys.modules['moto'] = None; from kapman.console import main; sys.exit(main({list(args)!r}))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_sandbox_without_moto_is_one_line(tmp_path: Path) -> None:
    """A plain install has no moto: the sandbox says which extra brings it, without a traceback."""
    done = without_moto("sandbox", "serve")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "needs moto" in done.stderr and "pip install 'kapman[sandbox]'" in done.stderr


@pytest.mark.parametrize("args", [("sandbox", "--help"), ("sandbox", "serve", "--help"), ("demo", "--help")])
def test_help_needs_no_moto(args: tuple[str, ...]) -> None:
    """``kapman sandbox --help`` said 'needs moto', exit 2: the sandbox's environment imported its S3 server."""
    done = without_moto(*args)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(f"usage: kapman {args[0]}")


def test_the_sandboxs_mirror_needs_no_moto(tmp_path: Path) -> None:
    done = without_moto("sandbox", "write-mirror", str(tmp_path / "mirror"), "--tickers", "5", "--days", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote ") and list((tmp_path / "mirror").rglob("*.csv.gz"))


def test_the_demo_without_moto_says_so_before_asking_the_database() -> None:
    """It reached the moto import after looking at (and offering to destroy) the database."""
    done = without_moto("demo", "--db-url", "postgresql://kapman:s3cretpw@127.0.0.1:1/kapman")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: the sandbox's S3 server needs moto"), done.stderr


def test_an_editable_install_runs_its_scripts_from_anywhere(source: Path, tmp_path: Path) -> None:
    """``pip install -e`` (./dev.sh setup): the commands find the checkout's ``scripts`` from any directory."""
    home = tmp_path / "editable"
    said = pip_install(new_venv(home), "-e", str(source), env={**os.environ, "PYTHONWARNINGS": "ignore"})  # as dev.sh
    assert not [line for line in said.splitlines() if "Warning" in line or "deprecat" in line.lower()], said
    done = subprocess.run([str(home / "bin" / "kapman"), "status", "--help"], cwd=tmp_path,
                          env=clean_env(home, tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: kapman status")


def test_every_installed_help_names_only_what_is_installed(venv: Path, tmp_path: Path) -> None:
    """No subcommand's help crashes or points at the checkout (``python -m scripts.*``, ``./dev.sh``,
    ``python -m kapman.sandbox``: that ``python`` may not be KapMan's)."""
    names = [line.split()[0] for line in kapman(venv, tmp_path, "--help").stdout.split("commands:\n")[1]
             .split("\n\n")[0].splitlines()]
    assert "rebuild" in names and "sandbox" in names
    for name in names:
        done = kapman(venv, tmp_path, name, "--help")
        assert (done.returncode, done.stderr) == (0, ""), name
        assert done.stdout.startswith(f"usage: kapman {name}"), name
        for word in ("python -m", "dev.sh", "in the checkout"):
            assert word not in done.stdout, (name, word)


def test_an_installed_error_hint_names_no_checkout_tool(venv: Path, tmp_path: Path) -> None:
    done = kapman(venv, tmp_path, "status", "--db-url", "postgresql://kapman:s3cretpw@127.0.0.1:1/kapman")
    assert done.returncode == 2 and "s3cretpw" not in done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        "error: cannot connect to postgresql://kapman:***@127.0.0.1:1/kapman: no database server answers there",
        "hint: start the database server (PostgreSQL with TimescaleDB) and check host and port in DATABASE_URL"]
    unset = kapman(venv, tmp_path, "status")
    assert unset.stderr.splitlines() == [
        f"error: DATABASE_URL is not set (looked in the environment and {tmp_path.resolve() / '.env'}, "
        "which does not exist)",
        f"hint: put DATABASE_URL=... in {tmp_path.resolve() / '.env'}, or pass --db-url "
        "postgresql://user:password@host:port/db"]


def test_the_installed_demos_steps_run_without_its_venv_on_path(venv: Path, tmp_path: Path) -> None:
    """The demo ran ``kapman rebuild`` through PATH (FileNotFoundError outside an activated venv) and
    psql on ``docs/runbooks/*.sql`` (not there: five failed dashboards)."""
    code = ("from kapman import runbook; "
            "r = runbook.run_step(runbook.Step('2', 'v', 'kapman --version'), {}, '', quiet=False); "
            "print(r.returncode); "
            "print(*[s.argv()[-1] for s in runbook.dashboard_steps()], sep='\\n')")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:5] == ["", "== Step 2: v ==", "$ kapman --version", f"kapman {__version__}", "0"], lines
    files = [Path(line) for line in lines[5:]]
    assert len(files) == 5 and all(f.is_file() and str(f).startswith(str(venv)) for f in files), files
