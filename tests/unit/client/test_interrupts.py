"""Ctrl-C held back while a request is handed to the transport (triton_vision_client.interrupts)."""

from __future__ import annotations

import os
import signal

import pytest

from triton_vision_client.interrupts import held


def test_a_ctrl_c_inside_the_section_is_raised_when_it_ends():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with held():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("the rest of the section ran")
    assert reached == ["the rest of the section ran"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's own handler is back


def test_without_a_ctrl_c_the_section_ends_quietly_and_nested_sections_hold_to_the_outermost():
    with held():
        with held():
            pass
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with held():
            with held():
                os.kill(os.getpid(), signal.SIGINT)
            reached.append("the inner section's end does not raise: the outer one is still sending")
    assert len(reached) == 1


def test_a_program_that_ignores_ctrl_c_keeps_ignoring_it():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with held():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
