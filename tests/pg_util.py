"""A fresh, empty PostgreSQL database for one test (tests that need a server use it).

A new database when the test role may create one; otherwise a new schema in the given database,
selected through the URL's `search_path`, which is just as empty to Optuna (its tables and its
`studydirection` type are made in the first schema of the search path).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

URL = os.environ.get("LRSWEEP_TEST_POSTGRES_URL")


@contextlib.contextmanager
def fresh_database(url: str) -> Iterator[str]:
    import sqlalchemy
    from sqlalchemy.exc import DBAPIError

    name = f"lrsweep_t_{uuid.uuid4().hex[:10]}"
    base = sqlalchemy.engine.make_url(url)
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            try:
                c.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
                fresh, drop = base.set(database=name), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            except DBAPIError:  # no CREATEDB: a fresh schema in the same database
                c.execute(sqlalchemy.text(f'CREATE SCHEMA "{name}"'))
                fresh = base.update_query_dict({"options": f"-csearch_path={name}"})
                drop = f'DROP SCHEMA IF EXISTS "{name}" CASCADE'
        yield fresh.render_as_string(hide_password=False)
    finally:
        with contextlib.suppress(Exception), admin.connect() as c:
            c.execute(sqlalchemy.text(drop))
        admin.dispose()
