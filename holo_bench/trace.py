"""The on-disk query log: an append-only file of fixed-size binary records.

One JSON header line describes the records (and the run's counting rule); then each query is one
record (call index, its batch's size, index in the batch, value, feasible, whether it was charged
against the budget, wall time, the sequence's tokens). Appends are
whole batches followed by a flush, so a killed process leaves every charged batch on disk; a batch
cut short by the kill is ignored by readers and dropped on the next append.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

FORMAT = "holo-bench-trace"
VERSION = 2


def record_dtype(dim: int, token_dtype: np.dtype) -> np.dtype:
    """Structured dtype of one query-log record for sequences of ``dim`` tokens."""
    return np.dtype(
        [
            ("call", "<i8"),
            ("size", "<i8"),
            ("index", "<i8"),
            ("value", "<f8"),
            ("feasible", "?"),
            ("charged", "?"),
            ("time", "<f8"),
            ("sequence", np.dtype(token_dtype).newbyteorder("<"), (dim,)),
        ]
    )


def trace_header(spec: str, dim: int, token_dtype: np.dtype, count: str) -> dict:
    """The header line of a trace of problem ``spec`` under the counting rule ``count``."""
    return {"format": FORMAT, "version": VERSION, "spec": spec, "dim": dim,
            "token_dtype": np.dtype(token_dtype).str, "count": count}


class TraceWriter:
    """Appends query-log records to ``path``, creating it with ``header`` (see ``trace_header``)
    if needed; an existing trace must have been written with the same header."""

    def __init__(self, path: str | os.PathLike, header: dict):
        self.path = Path(path)
        self.dtype = record_dtype(header["dim"], np.dtype(header["token_dtype"]))
        if self.path.exists() and self.path.stat().st_size > 0:
            existing, records = read_trace(self.path)
            if existing != header:
                raise ValueError(f"{self.path} holds a trace of {existing}, not of {header}")
            self._file = open(self.path, "r+b")
            self._file.truncate(self._header_size(self.path) + records.nbytes)  # drop a torn record
            self._file.seek(0, os.SEEK_END)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "wb")
            self._file.write((json.dumps(header, sort_keys=True) + "\n").encode())
            self._file.flush()

    @staticmethod
    def _header_size(path: Path) -> int:
        with open(path, "rb") as file:
            return len(file.readline())

    def append(self, records: np.ndarray) -> None:
        """Write a batch of records (of ``self.dtype``) and flush it to the operating system.
        An ``OSError`` (a full disk) names the trace; the batch is then torn, and dropped on
        resume like a killed process's."""
        try:
            self._file.write(records.astype(self.dtype, copy=False).tobytes())
            self._file.flush()
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(self.path)) from err

    def close(self) -> None:
        try:
            self._file.close()  # flushes what a failed append left in the buffer
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(self.path)) from err


class TraceError(ValueError):
    """A file that is not a well-formed trace; ``row`` is the record concerned, if any."""

    def __init__(self, message: str, row: int | None = None):
        super().__init__(message)
        self.row = row


def read_trace(path: str | os.PathLike, strict: bool = False) -> tuple[dict, np.ndarray]:
    """Read a trace file: its header and its records (a structured array).

    A process killed mid-write can leave a cut record or a torn last batch: by default these are
    dropped, as the oracle does when it resumes; with ``strict`` a cut record raises
    ``TraceError`` (a torn batch is left for the caller to judge from the records).
    """
    with open(path, "rb") as file:
        line = file.readline()
        try:
            header = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise TraceError(f"{path} is not a holo-bench trace (bad header line)")
        if header.get("version") != VERSION:
            raise TraceError(f"{path}: trace version {header.get('version')!r}, this holo-bench "
                             f"reads version {VERSION} (written since holo-bench 0.2): rerun the "
                             "job")
        try:
            dtype = record_dtype(int(header["dim"]), np.dtype(header["token_dtype"]))
        except (KeyError, TypeError, ValueError) as err:
            raise TraceError(f"{path}: bad trace header {header}: {err}") from None
        body = file.read()
    whole, trailing = divmod(len(body), dtype.itemsize)
    if trailing and strict:
        raise TraceError(f"{trailing} trailing bytes after {whole} whole records of "
                         f"{dtype.itemsize} bytes: the last record is cut short", row=whole)
    records = np.frombuffer(body[: whole * dtype.itemsize], dtype=dtype)
    if not strict and len(records) and records["index"][-1] != records["size"][-1] - 1:
        records = records[records["call"] != records["call"][-1]]  # a torn last batch
    return header, records
