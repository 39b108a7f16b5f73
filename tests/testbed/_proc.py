"""Small process helpers shared by the testbed modules (no pytest imports here)."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("testbed")


class TestbedError(RuntimeError):
    """A real daemon or host of the testbed could not be set up; the message says how."""

    __test__ = False  # not a pytest test class despite the name


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 120,
        **kwargs) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and capture text output.

    Raises ``TestbedError`` (with stderr in the message) if ``check`` and it fails,
    or if the binary does not exist.
    """
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              **kwargs)
    except FileNotFoundError as exc:
        raise TestbedError(f"{argv[0]} not found; run .ci/setup-system.sh as root") from exc
    if check and proc.returncode != 0:
        raise TestbedError(
            f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def ok(argv: Sequence[str], timeout: float = 30) -> bool:
    """True if ``argv`` exits 0 within ``timeout`` seconds (never raises)."""
    try:
        return subprocess.run(list(argv), capture_output=True, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll ``pred`` until it returns True or ``timeout`` seconds pass; return the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def descendants(pid: int) -> list[int]:
    """All live descendant pids of ``pid`` (read from /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in _proc_pids():
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(entry)
    out: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def _proc_pids() -> list[int]:
    import os
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]
