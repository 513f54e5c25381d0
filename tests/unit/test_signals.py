"""kapman.signals: SIGTERM and SIGHUP become a KeyboardInterrupt that names them, inside the block only."""

from __future__ import annotations

import os
import signal

import pytest

from kapman import signals


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_is_an_interrupt_with_its_exit_code(signum: int, code: int) -> None:
    before = signal.getsignal(signum)
    with pytest.raises(KeyboardInterrupt) as caught, signals.as_interrupts():
        os.kill(os.getpid(), signum)     # Python runs the handler before the next statement
        pytest.fail("the signal did not interrupt")
    assert isinstance(caught.value, signals.Terminated)
    assert signals.exit_code(caught.value) == code
    assert signals.describe(caught.value) == f"interrupted by {signal.Signals(signum).name}"
    assert signal.getsignal(signum) == before                     # the previous handler is back


def test_ctrl_c_keeps_its_own_words_and_code() -> None:
    assert signals.describe(KeyboardInterrupt()) == "interrupted (Ctrl-C)"
    assert signals.exit_code(KeyboardInterrupt()) == 130
