"""Where a study lives: a journal file (one machine, several processes, no server) or a database URL.

A value with '://' is a database URL for Optuna's RDBStorage (e.g. postgresql://user@host/db, for
many machines); anything else is the path of a journal file. sqlite is accepted but not the
default: it is not safe for parallel workers.

Every way the storage can be wrong (no server, wrong password, no such database, no driver, a
journal path that cannot be created) is a `ConfigError` naming `hydra.sweeper.storage`, so it is one
line and exit 2 before any training; the password never appears in it.

Many workers may start at the same moment on a new database (a job array does exactly that).
Optuna creates its schema on first contact, and two processes creating it at once collide
(`UniqueViolation ... CREATE TYPE studydirection`). On PostgreSQL the first contact is serialised
with an advisory lock; on any database a collision is retried after a short random wait, by which
time the schema exists and creating it is a no-op.
"""

from __future__ import annotations

import os
import random
import re
import time
from typing import Any, Literal, cast

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

KEY = "hydra.sweeper.storage"
SCHEMA_LOCK_ID = 0x6C72_7377  # "lrsw": the advisory lock that serialises Optuna's schema creation
SCHEMA_ATTEMPTS = 8
CONNECT_TIMEOUT_S = 10
DRIVER_HINTS = {  # driver module -> how to install it
    "psycopg": "pip install -e .[postgres] (psycopg)",
    "psycopg2": "pip install -e .[postgres] and use postgresql+psycopg:// (or pip install psycopg2-binary)",
    "pymysql": "pip install pymysql",
    "MySQLdb": "pip install mysqlclient",
}


def is_url(spec: str) -> bool:
    return "://" in spec


def masked(spec: str) -> str:
    """The storage spec with any password replaced by ***."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", spec)


def _error(spec: str, allowed: str) -> Exception:
    from sweep.errors import ConfigError

    return ConfigError(KEY, masked(spec), allowed)


def _where(url: Any) -> str:
    """`backend at host:port as user 'name', database 'db'`: what a user needs to check, no password."""
    host = url.host or "localhost"
    port = url.port or {"postgresql": 5432, "mysql": 3306}.get(url.get_backend_name(), "")
    who = f" as user '{url.username}'" if url.username else ""
    return f"{url.get_backend_name()} at {host}{':' if port else ''}{port}{who}, database '{url.database}'"


def _first_line(err: BaseException, password: str | None) -> str:
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line.replace(password, "***") if password else line


def _engine_kwargs(url: Any) -> dict[str, Any]:
    """A dead connection is replaced, and an unreachable server fails in seconds, not minutes."""
    timeout = (
        {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
        if url.get_backend_name() in ("postgresql", "mysql")
        else {}
    )
    return {"pool_pre_ping": True, **timeout}


def _engine(spec: str) -> tuple[Any, Any]:
    """A SQLAlchemy engine for `spec`, or a ConfigError for an unknown scheme or a missing driver."""
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = sqlalchemy.engine.make_url(spec)
    except ArgumentError:
        raise _error(spec, "a journal file path or a database URL such as postgresql://user@host/db") from None
    try:
        return sqlalchemy.create_engine(url, **_engine_kwargs(url)), url
    except NoSuchModuleError:
        raise _error(spec, "a database URL SQLAlchemy knows: postgresql://, mysql://, sqlite:///") from None
    except ImportError as err:
        module = (getattr(err, "name", None) or str(err)).split(".")[0]
        hint = DRIVER_HINTS.get(module, f"pip install {module}")
        raise _error(spec, f"a database whose driver is installed: '{module}' is missing; {hint}") from None


def _connect_check(engine: Any, url: Any, spec: str) -> Any:
    """An open connection, or a ConfigError saying where the database refused or could not be reached."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    try:
        return engine.connect()
    except (OperationalError, DBAPIError) as err:
        raise _error(
            spec, f"a database that accepts connections: {_where(url)}: {_first_line(err, url.password)}"
        ) from None


def _is_schema_race(err: BaseException) -> bool:
    text = f"{err!r} {getattr(err, '__cause__', '')!r}".lower()
    return any(s in text for s in ("already exists", "uniqueviolation", "duplicate key", "integrityerror", "deadlock"))


def open_rdb(spec: str, *, create_schema: bool = True) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage on `spec`, with one-line errors and a schema created once by many workers.

    `create_schema=False` opens a database read-only (for `python -m sweep status`): no tables are made.
    """
    engine, url = _engine(spec)
    connection = _connect_check(engine, url, spec)
    postgres = url.get_backend_name() == "postgresql"
    if not create_schema:
        import sqlalchemy

        if not sqlalchemy.inspect(connection).has_table("studies"):
            connection.close()
            engine.dispose()
            raise _error(
                spec, f"a database that holds Optuna's tables: {_where(url)} has none (no sweep has used it yet)"
            )
    try:
        if postgres and create_schema:  # the others wait here while the first creates the schema
            from sqlalchemy import text

            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": SCHEMA_LOCK_ID})
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                return optuna.storages.RDBStorage(
                    spec,
                    engine_kwargs=_engine_kwargs(url),
                    skip_table_creation=not create_schema,
                    skip_compatibility_check=not create_schema,
                )
            except Exception as err:  # noqa: BLE001 - sorted below: a creation race is retried, the rest is one line
                if create_schema and _is_schema_race(err) and attempt + 1 < SCHEMA_ATTEMPTS:
                    time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))
                    continue
                raise _error(
                    spec, f"a database Optuna can use: {_where(url)}: {_first_line(err, url.password)}"
                ) from None
        raise AssertionError("unreachable")
    finally:
        if postgres and create_schema:
            from sqlalchemy import text

            try:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": SCHEMA_LOCK_ID})
            except Exception:  # noqa: BLE001 - closing the connection releases it anyway
                pass
        connection.close()
        engine.dispose()


def open_journal(spec: str, *, create: bool = True) -> optuna.storages.JournalStorage:
    """Optuna's JournalStorage in the file `spec` (made, with its folder, unless `create=False`)."""
    path = os.path.abspath(spec)
    if not create and not os.path.isfile(path):
        raise _error(spec, "an existing journal file (a sweep dir holds study.journal)")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a directory")
        if create:
            open(path, "ab").close()
        elif not os.access(path, os.R_OK):
            raise PermissionError(f"{path} is not readable")
    except OSError as err:
        raise _error(
            spec, f"a journal file path that can be created: {err.filename or path}: {err.strerror or err}"
        ) from None
    backend = JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))
    return optuna.storages.JournalStorage(backend)


def open_storage(spec: str) -> optuna.storages.BaseStorage:
    """The study storage the sweeper and its workers use; any problem is a one-line ConfigError."""
    return open_rdb(spec) if is_url(spec) else open_journal(spec)


def open_storage_readonly(spec: str) -> optuna.storages.BaseStorage:
    """The storage for reading only: creates no file, no table, takes no lock beyond a read."""
    return open_rdb(spec, create_schema=False) if is_url(spec) else open_journal(spec, create=False)


def create_or_load_study(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    direction: str | list[str],
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """The study, made by whichever worker gets there first; the others load it.

    Two workers that both find no study both try to create it; the loser sees DuplicatedStudyError
    (or, mid-insert on a database, an integrity error) and loads what the winner made.
    """
    last: Exception | None = None
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            names = [direction] if isinstance(direction, str) else list(direction)
            directions = cast(list[Literal["minimize", "maximize"]], names)  # Optuna rejects any other name
            return optuna.create_study(
                study_name=study_name, storage=storage, directions=directions, sampler=sampler, pruner=pruner
            )
        except optuna.exceptions.DuplicatedStudyError:
            pass
        except Exception as err:  # noqa: BLE001 - a half-made study of another worker: wait, then load
            if not _is_schema_race(err) and not isinstance(err, optuna.exceptions.StorageInternalError):
                raise
            last = err
        try:
            return optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
        except KeyError as err:  # created but not yet visible: try again shortly
            last = err
            time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))
    raise RuntimeError(f"could not create or load study '{study_name}': {last}")
