"""`make run`'s supervisor: the restart policy (pure), and real children, one of which keeps dying
while the others keep running."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.run_all import Child, RestartPolicy, Supervisor, exit_text


@pytest.mark.parametrize(("uptimes", "waits"), [
    ([0.5] * 9, [1, 2, 4, 8, 16, 32, 60, 60, 60]),  # dies at once, again and again: capped at 60 s
    ([0.5, 0.5, 0.5, 120, 0.5], [1, 2, 4, 1, 2]),  # it had stayed up 2 min: the streak starts over
    ([59.9, 60.0, 5], [1, 1, 2]),  # 60 s up counts as recovered
])
def test_restart_policy_table(uptimes: list[float], waits: list[float]) -> None:
    policy, streak, got = RestartPolicy(), 0, []
    for up in uptimes:
        streak, wait = policy.after_exit(streak, up)
        got.append(wait)
    assert got == waits


@given(st.lists(st.floats(0, 500, allow_nan=False), min_size=1, max_size=100))
def test_restart_waits_stay_between_first_and_max(uptimes: list[float]) -> None:
    policy, streak = RestartPolicy(first_s=0.5, max_s=30, stable_s=10), 0
    for up in uptimes:
        before = streak
        streak, wait = policy.after_exit(streak, up)
        assert 0.5 <= wait <= 30
        assert streak == (1 if up >= 10 else before + 1)


def test_exit_text() -> None:
    assert exit_text(3) == "exited with code 3"
    assert exit_text(-9) == "was killed by SIGKILL"


def test_a_child_that_keeps_dying_is_restarted_with_backoff_and_the_others_keep_running(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dying = Child("flaky", [sys.executable, "-c", "print('cannot reach the database'); raise SystemExit(3)"])
    steady = Child("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    sup = Supervisor([dying, steady], {}, RestartPolicy(first_s=0.2, max_s=0.8, stable_s=30), tmp_path)
    caplog.set_level(logging.INFO, logger="sqm")
    sup.start_all()
    steady_pid = steady.proc.pid if steady.proc else None
    t0 = time.monotonic()
    starts = [0.0]
    try:
        while time.monotonic() - t0 < 4.0:
            before = dying.proc
            sup.tick()
            if dying.proc is not before:
                starts.append(time.monotonic() - t0)
            time.sleep(0.02)
        assert steady.proc is not None and steady.proc.poll() is None and steady.proc.pid == steady_pid
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        assert len(starts) >= 5, starts
        # each gap is the child's short life plus the wait: 0.2, 0.4, 0.8, then 0.8 (the cap)
        assert gaps[0] < gaps[1] < gaps[2] and abs(gaps[3] - gaps[2]) < 0.25, gaps
        text = caplog.text
        assert "flaky exited with code 3" in text and "starting it again in 0.2 s" in text and "again in 0.8 s" in text
        assert f"its log: {tmp_path / 'flaky.log'}; last line: cannot reach the database" in text
        about_steady = [r.getMessage() for r in caplog.records if r.getMessage().startswith("steady")]
        assert about_steady == [], "nothing happened to the steady child"
        assert text.count("started steady") == 1
    finally:
        sup.stop_all(5)
    assert steady.proc.poll() is not None
