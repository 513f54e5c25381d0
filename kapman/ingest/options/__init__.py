"""Option-chain snapshots of the watchlist underlyings into ``public.options_chains``.

The package is the pipeline's stages, one module each:

- ``snapshot``: the run's one snapshot time, by the clock of the server that serves the chains;
- ``fetch``: a chain's pages, fetched as raw bodies by a pool of threads;
- ``process`` (run by ``workers``): pages decoded, normalised (``normalise``) and encoded as one
  binary COPY payload;
- ``write``: one transaction per symbol that leaves exactly the new chain under the snapshot time;
- ``report``: per-symbol outcomes and totals as the step's result;
- ``pipeline`` runs the stages for a scope; ``step`` is the step contract's ``run``.
"""

from __future__ import annotations

from kapman.ingest.options.pipeline import ingest_options, plan_options
from kapman.ingest.options.report import OptionsResult, SymbolOutcome
from kapman.ingest.options.step import OptionsParams, run
from kapman.ingest.options.workers import default_workers
from kapman.ingest.options.write import write_chain

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
