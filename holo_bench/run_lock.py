"""One writer per run folder: an exclusive advisory lock held while a run reads or writes it.

Two processes appending to one trace interleave their calls and destroy both runs. So a
writer (the runner, or ``holo_bench.interop.poli.black_box``) takes ``fcntl.flock`` on the
folder's ``writer.lock`` file before it touches anything else there, and holds it until the
manifest is final. The lock belongs to the open file: the operating system releases it when the
holder exits or is killed, so a dead holder never blocks a resume. The file records the holder
(host, pid, start time) for the message another process gets; it is never deleted, since removing
a lock file lets two processes lock two different files of one name.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK = "writer.lock"


class RunLocked(RuntimeError):
    """Another process holds the run folder; ``holder`` is what it recorded (may be empty)."""

    def __init__(self, folder: Path, holder: dict):
        self.folder = folder
        self.holder = holder
        super().__init__(f"{folder} is being written by {describe_holder(holder)}")


def describe_holder(holder: dict) -> str:
    """``host H, pid P, since YYYY-MM-DD HH:MM:SS``, or ``another process`` if unrecorded."""
    try:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"]))
        return f"host {holder['host']}, pid {holder['pid']}, since {since}"
    except (KeyError, TypeError, ValueError, OverflowError):
        return "another process"


@contextmanager
def lock_run_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold ``folder``'s lock for the ``with`` block (creating the folder); ``RunLocked`` at once,
    without waiting, if another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(folder, _read_holder(descriptor)) from None
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(holder).encode(), 0)
        try:
            yield folder
        finally:
            os.ftruncate(descriptor, 0)  # released: no holder to name
    finally:
        os.close(descriptor)  # closing the descriptor releases the lock


def _read_holder(descriptor: int) -> dict:
    try:
        holder = json.loads(os.pread(descriptor, 4096, 0) or b"{}")
    except (OSError, ValueError):  # written at this instant, or damaged: name no one
        return {}
    return holder if isinstance(holder, dict) else {}
