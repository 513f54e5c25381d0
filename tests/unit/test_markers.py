"""The suite's markers: a test that needs the community edition says so with the marker."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_community_only_tests_skip_through_the_marker_not_by_hand() -> None:
    """``pytest -m community`` selects every community-edition test: none skips on the license
    itself (tests/conftest.py skips the marked ones, with the reason, on the Apache edition)."""
    by_hand = re.compile(r"""!=\s*["']timescale["']|["']timescale["']\s*!=""")
    offenders = [f"{path.relative_to(TESTS)}:{n}" for path in sorted(TESTS.rglob("test_*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1) if by_hand.search(line)]
    assert offenders == [], "mark these @pytest.mark.community instead: " + ", ".join(offenders)
