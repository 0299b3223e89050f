"""``make dev``: Dagster's ``dg dev`` (webserver, daemon, code server), stopped within 10 s on Ctrl-C or SIGTERM.

``dg dev`` alone could take far longer to stop: it waits up to 60 s for the webserver and then up to
60 s for the daemon, and a run in progress holds its step process while that process shuts its
Chromium and the embedded site down (8 s measured with one scrape running and a browser on the UI;
50 s seen after a long session). Here ``dg dev`` runs in a process group of its own, which this
supervisor stops on a deadline:

    SIGINT to the whole group   what a Ctrl-C in the terminal sends: Dagster's orderly shutdown, runs
                                in progress are marked failed ("interrupted")
    SIGTERM after GRACE_S       to whatever is still there
    SIGKILL after KILL_AFTER_S  nothing outlives the deadline: no orphan Chromium or run worker

A second Ctrl-C skips the wait. Every argument is passed to ``dg dev``.

Usage: ``python -m fashion_pipeline.devserver [dg dev options]`` (``make dev`` runs it).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

GRACE_S = 7.5
KILL_AFTER_S = 9.0  # SIGKILL here: the group is gone inside 10 s


def group_members(pgid: int) -> list[str] | None:
    """The live (non-zombie) processes of a group as "pid name", from /proc; None where there is no /proc.

    A zombie still counts for ``killpg(pgid, 0)``, and an orphan's zombie may never be reaped in a
    container whose PID 1 reaps nothing: so liveness is read from each process's state.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        state, group = rest[0], int(rest[2])  # fields 3 and 5 of proc(5): state, pgrp
        if group == pgid and state != "Z":
            members.append(f"{entry.name} {name}")
    return members


def _group_alive(pgid: int) -> bool:
    members = group_members(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal is still a member
        return True


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def stop_group(child: subprocess.Popen, urgent: threading.Event | None = None,
               grace_s: float = GRACE_S, kill_after_s: float = KILL_AFTER_S) -> str:
    """Stop ``child``'s process group: SIGINT, then SIGTERM, then SIGKILL. Returns the last signal needed."""
    pgid, started = child.pid, time.monotonic()
    steps = [(0.0, signal.SIGINT), (grace_s, signal.SIGTERM), (kill_after_s, signal.SIGKILL)]
    last = "none"
    for at, signum in steps:
        while time.monotonic() - started < at:
            child.poll()  # reap our own child, so a finished dg dev does not count as alive
            if not _group_alive(pgid):
                return last
            if urgent is not None and urgent.is_set():
                break
            time.sleep(0.1)
        child.poll()
        if not _group_alive(pgid):
            return last
        if signum != signal.SIGINT:
            print(f"[dev] still running after {time.monotonic() - started:.1f}s, sending {signal.Signals(signum).name}: "
                  f"{', '.join(group_members(pgid) or ['?'])}", file=sys.stderr, flush=True)
        _signal_group(pgid, signum)
        last = signal.Signals(signum).name
    deadline = time.monotonic() + 2.0
    while _group_alive(pgid) and time.monotonic() < deadline:
        child.poll()
        time.sleep(0.05)
    return last


def _dg() -> str:
    return str(Path(sys.executable).with_name("dg"))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    child = subprocess.Popen([_dg(), "dev", *args], start_new_session=True)
    requested, urgent = threading.Event(), threading.Event()

    def on_signal(signum, _frame):
        if requested.is_set():
            urgent.set()  # a second Ctrl-C: no more waiting
        requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while child.poll() is None and not requested.wait(0.5):
        pass
    if child.poll() is None or _group_alive(child.pid):
        started = time.monotonic()
        print("[dev] stopping Dagster (Ctrl-C again to kill it now) ...", file=sys.stderr, flush=True)
        last = stop_group(child, urgent)
        print(f"[dev] stopped in {time.monotonic() - started:.1f}s"
              + ("" if last in ("none", "SIGINT") else f" (needed {last})"), file=sys.stderr, flush=True)
        return 0
    return child.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
