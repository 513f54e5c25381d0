"""A stand-in for ``options_encode.process_pages`` whose worker processes die on their first chain."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

from kapman.ingest import options_encode


def process_pages(*args: Any) -> options_encode.EncodedChain:
    if multiprocessing.parent_process() is not None:  # in a worker process: as if killed
        os._exit(9)
    return options_encode.process_pages(*args)
