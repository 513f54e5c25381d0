"""The nightly's log file: a path it cannot write is one warning, and the run goes on without it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kapman.config import Settings
from kapman.ops import logfile


def test_a_log_file_that_cannot_be_written_is_a_warning_not_an_error(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "afile").write_text("")
    before = list(logging.getLogger().handlers)
    with caplog.at_level(logging.WARNING):
        assert logfile.attach(tmp_path / "afile" / "nightly.log", Settings()) is None
    assert logging.getLogger().handlers == before
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot write the log file {tmp_path / 'afile' / 'nightly.log'} (File exists); this run logs to the "
        "console only (--log-file PATH elsewhere, or --log-file '' for none)"]


def test_a_writable_log_file_gets_the_runs_lines(tmp_path: Path) -> None:
    handler = logfile.attach(tmp_path / "logs" / "nightly.log", Settings())
    assert handler is not None
    try:
        logging.getLogger("kapman.test").info("one line")
        handler.flush()
        assert (tmp_path / "logs" / "nightly.log").read_text().rstrip().endswith("INFO kapman.test: one line")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
