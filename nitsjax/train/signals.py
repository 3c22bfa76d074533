"""SIGINT/SIGTERM during ``fit``: note the signal, let the running period finish."""

from __future__ import annotations

import contextlib
import signal
import threading


@contextlib.contextmanager
def stop_on_signals():
    """Install SIGINT/SIGTERM handlers that record the signal; restore them on exit.

    Yields a dict whose ``"signum"`` is None until a signal arrives. A second SIGINT
    raises ``KeyboardInterrupt`` at once. Outside the main thread signals cannot be caught
    and nothing is installed."""
    flag = {"signum": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["signum"] is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["signum"] = signum

    previous = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        previous[s] = signal.signal(s, handler)
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
