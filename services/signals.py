"""Graceful stop for the foreground processes: SIGINT/SIGTERM set an event instead of raising."""

from __future__ import annotations

import signal
import threading


def stop_event() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM; loops poll `is_set()` and finish their current step."""
    ev = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: ev.set())
    return ev
