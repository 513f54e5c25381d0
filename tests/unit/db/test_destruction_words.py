"""What a confirmed destruction says: the command that destroys, and the loss on one readable line."""

from __future__ import annotations

import io
import logging

import pytest

from kapman.db.destruction import Loss, confirm

LOSS = Loss(database="kapman_demo", exists=True, rows={"ohlcv": 287_099, "options_chains": 413_440},
            snapshots=770, snapshot_times=5, archived=770)


def test_a_destruction_confirmed_with_yes_is_one_readable_line(caplog: pytest.LogCaptureFixture) -> None:
    """The table's padding went into the log line ('the demo destroys   ohlcv            287,099 rows;')."""
    with caplog.at_level(logging.WARNING, logger="kapman.db.destruction"):
        confirm(LOSS, yes=True, what="the demo")
    assert [r.getMessage() for r in caplog.records] == [
        "the demo destroys ohlcv 287,099 rows; options_chains 413,440 rows; 0 of 770 option chains (5 snapshots, "
        "a chain per symbol) cannot be fetched again (the archive holds 770) (confirmed with --yes)"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_question_names_the_command_that_destroys() -> None:
    """The demo's question said the database 'holds data that the rebuild destroys'."""
    err = io.StringIO()
    confirm(LOSS, yes=False, what="the demo", stdin=_Terminal("kapman_demo\n"), stderr=err)
    assert err.getvalue().splitlines()[0] == "database kapman_demo holds data that the demo destroys:"
