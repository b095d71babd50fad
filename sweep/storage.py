"""Where a study lives: a journal file (one machine, several processes, no server) or a database URL.

A value with '://' is a database URL for Optuna's RDBStorage (e.g. postgresql://user@host/db, for
many machines); anything else is the path of a journal file. sqlite is accepted but not the
default: it is not safe for parallel workers.
"""

from __future__ import annotations

import os
import re

import optuna

from sweep.search import build_pruner


def is_url(spec: str) -> bool:
    return "://" in spec


def open_storage(spec: str) -> optuna.storages.BaseStorage:
    if is_url(spec):
        return optuna.storages.RDBStorage(spec, engine_kwargs={"pool_pre_ping": True})
    parent = os.path.dirname(os.path.abspath(spec))
    os.makedirs(parent, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(
        spec, lock_obj=optuna.storages.journal.JournalFileOpenLock(spec))
    return optuna.storages.JournalStorage(backend)


def masked(spec: str) -> str:
    """The storage spec with any password replaced by ***."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", spec)


def load_study(spec: str, study_name: str) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    """Open a study another process created, with the pruner its sweeper saved in the study."""
    storage = open_storage(spec)
    study = optuna.load_study(study_name=study_name, storage=storage)
    pruner = build_pruner(dict(study.user_attrs.get("pruner", {"name": "none"})))
    return optuna.load_study(study_name=study_name, storage=storage, pruner=pruner), storage
