"""Packaging beyond what ``pyproject.toml`` can say: directories of the checkout shipped inside ``kapman``.

The checkout keeps ``db/migrations``, ``data/watchlists``, the dashboards (``docs/runbooks/*.sql``) and
the ``scripts`` package where the runbook names them (``python -m scripts.*``); the wheel carries them as
``kapman/_shipped/`` and ``kapman._scripts``, so an installed KapMan finds them and adds no top-level package
named ``scripts``.
"""

from setuptools import find_packages, setup

SCRIPTS = {f"kapman._scripts{name[len('scripts'):]}": name.replace(".", "/")
           for name in find_packages(include=["scripts", "scripts.*"])}
SHIPPED = {"kapman._shipped.migrations": "db/migrations", "kapman._shipped.watchlists": "data/watchlists",
           "kapman._shipped.dashboards": "docs/runbooks"}

setup(
    packages=find_packages(include=["kapman", "kapman.*"]) + list(SCRIPTS) + list(SHIPPED),
    package_dir={**SCRIPTS, **SHIPPED},
    package_data={"kapman._shipped.migrations": ["*.sql"], "kapman._shipped.watchlists": ["*.txt"],
                  "kapman._shipped.dashboards": ["*.sql"]},
)
