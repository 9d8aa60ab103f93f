"""CPU time by process family over a measured window: where a benchmark's machine time goes.

A family is a root process and everything under it (gunicorn's master and its workers, the
postmaster and its backends), except what lies under another root: the benchmark's own process
is a root too, and the servers it started are counted as themselves, not as its children.
Children that exit inside the window are counted through their root's children times.
"""

from __future__ import annotations

from types import TracebackType

import psutil


def _members(root: psutil.Process, other_roots: set[int]) -> list[psutil.Process]:
    members, stack = [], [root]
    while stack:
        process = stack.pop()
        members.append(process)
        try:
            stack.extend(child for child in process.children() if child.pid not in other_roots)
        except psutil.Error:
            continue
    return members


def _family_seconds(root: psutil.Process, other_roots: set[int]) -> dict[int, float]:
    seconds: dict[int, float] = {}
    for process in _members(root, other_roots):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue  # exited between listing and reading: counted by its parent once reaped
        seconds[process.pid] = times.user + times.system
        if process.pid == root.pid:
            seconds[process.pid] += times.children_user + times.children_system
    return seconds


class CpuMeter:
    """`with CpuMeter({"label": pid, ...}) as meter:` then `meter.seconds` by label."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = {label: psutil.Process(pid) for label, pid in roots.items()}
        self._start: dict[str, dict[int, float]] = {}
        self.seconds: dict[str, float] = {}

    def _seconds(self, root: psutil.Process) -> dict[int, float]:
        return _family_seconds(root, {other.pid for other in self.roots.values()} - {root.pid})

    def __enter__(self) -> CpuMeter:
        self._start = {label: self._seconds(root) for label, root in self.roots.items()}
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for label, root in self.roots.items():
            before = self._start[label]
            after = self._seconds(root)
            self.seconds[label] = sum(value - before.get(pid, 0.0) for pid, value in after.items())
