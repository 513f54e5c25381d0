"""Option-chain snapshots of the watchlist underlyings into ``public.options_chains``.

The package is the pipeline's stages, one module each:

- ``snapshot``: the run's one snapshot time, by the clock of the server that serves the chains;
- ``fetch``: a chain's pages, fetched as raw bodies by a pool of threads;
- ``process`` (run by ``workers``): pages decoded, normalised (``normalise``) and encoded as one
  binary COPY payload;
- ``write``: one transaction per symbol that leaves exactly the new chain under the snapshot time;
- ``report``: per-symbol outcomes and totals as the step's result;
- ``pipeline`` runs the stages for a scope; ``step`` is the step contract's ``run``.

The names below are imported when first used: a worker process imports only the modules of the
stage it runs (``process``, ``workers``), not the pipeline's database and watchlist modules, so
it boots in a fraction of the time (and ends sooner after its parent is gone).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kapman.ingest.options.pipeline import ingest_options, plan_options
    from kapman.ingest.options.report import OptionsResult, SymbolOutcome
    from kapman.ingest.options.step import OptionsParams, run
    from kapman.ingest.options.workers import default_workers
    from kapman.ingest.options.write import write_chain

_HOMES = {
    "OptionsParams": "step",
    "OptionsResult": "report",
    "SymbolOutcome": "report",
    "default_workers": "workers",
    "ingest_options": "pipeline",
    "plan_options": "pipeline",
    "run": "step",
    "write_chain": "write",
}
__all__ = [
    "OptionsParams",
    "OptionsResult",
    "SymbolOutcome",
    "default_workers",
    "ingest_options",
    "plan_options",
    "run",
    "write_chain",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
