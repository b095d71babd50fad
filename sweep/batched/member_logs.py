"""Each member of a batched job gets its own `train.log`, and every line says whose it is.

The sweeper opens the job's log in the first member's job dir; here every other member gets one in
its own job dir (the same file name), and each file keeps the job's shared lines plus its own
member's: a line logged inside `member(number)`, or with `extra={"trial": number}`, starts with
`trial <number>:` and goes to that member's file only.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

_MEMBER: contextvars.ContextVar[int | None] = contextvars.ContextVar("lr_sweep_member", default=None)
DEFAULT_NAME = "train.log"


@contextlib.contextmanager
def member(number: Any) -> Iterator[None]:
    """Lines logged inside this block belong to trial `number`."""
    token = _MEMBER.set(None if number is None else int(number))
    try:
        yield
    finally:
        _MEMBER.reset(token)


class _Tag(logging.Filter):
    """Marks a record with its member (once) and keeps it for the file of `number` (None: shared)."""

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "member_tagged"):
            owner = getattr(record, "trial", None)
            owner = _MEMBER.get() if owner is None else int(owner)
            record.trial, record.member_tagged = owner, True
            if owner is not None:
                record.msg, record.args = f"trial {owner}: {record.getMessage()}", None
        owner = getattr(record, "trial", None)  # set above, on the record's first pass
        return owner is None or owner == self.number


def _file_handlers() -> list[logging.FileHandler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


@contextlib.contextmanager
def member_logs(numbers: Sequence[Any], job_dirs: Sequence[str | None]) -> Iterator[None]:
    """A log file per member (the first member's is the sweeper's own, where it opened one)."""
    root = logging.getLogger()
    existing = {os.path.abspath(h.baseFilename): h for h in _file_handlers()}
    first_dir = os.path.abspath(job_dirs[0] or ".")
    first = next((h for path, h in existing.items() if os.path.dirname(path) == first_dir), None)
    name = os.path.basename(first.baseFilename) if first is not None else DEFAULT_NAME
    added: list[logging.Handler] = []
    tagged: list[tuple[logging.Handler, logging.Filter]] = []
    for number, job_dir in zip(numbers, job_dirs):
        if job_dir is None or number is None:
            continue
        path = os.path.abspath(os.path.join(job_dir, name))
        handler = existing.get(path)
        if handler is None:
            os.makedirs(job_dir, exist_ok=True)
            handler = logging.FileHandler(path)
            if first is not None:
                handler.setFormatter(first.formatter)
                handler.setLevel(first.level)
            root.addHandler(handler)
            added.append(handler)
        tag = _Tag(int(number))
        handler.addFilter(tag)
        tagged.append((handler, tag))
    try:
        yield
    finally:
        for tagged_handler, tag_filter in tagged:
            tagged_handler.removeFilter(tag_filter)
        for added_handler in added:
            root.removeHandler(added_handler)
            added_handler.close()
