"""A stand-in for ``options_process.process_pages`` whose worker processes die on their first chain."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

from kapman.ingest.options import process as options_process


def process_pages(*args: Any) -> options_process.EncodedChain:
    if multiprocessing.parent_process() is not None:  # in a worker process: as if killed
        os._exit(9)
    return options_process.process_pages(*args)
