"""A schema of its own on the local PostgreSQL for each test that needs one.

PostgreSQL runs on 127.0.0.1:5432 (user postgres, trust auth, database `test`) on the
development and CI machines. Under CI=true a missing PostgreSQL fails the test; on a
laptop without one, the test is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

SERVER_URL = os.environ.get("MAILSLOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI needs PostgreSQL on 127.0.0.1:5432 for this test)")
    pytest.skip(reason)


async def execute(sql: str) -> None:
    """Run SQL on the test database, outside any test's schema."""
    import asyncpg

    connection = await asyncpg.connect(SERVER_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def admin(sql: str) -> None:
    """Run SQL on the test database, outside any test's schema."""
    asyncio.run(execute(sql))


def schema_url(schema: str) -> str:
    return f"{SERVER_URL}?search_path={schema}"


def require_postgres() -> None:
    """Skip the test (fail it under CI=true) unless PostgreSQL answers."""
    try:
        import asyncpg
    except ImportError:
        _unavailable("asyncpg is not installed (pip install -e '.[test]')")
    try:
        admin("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        _unavailable(f"no PostgreSQL at {SERVER_URL}: {error}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a new, empty schema (search_path set), dropped after the test."""
    require_postgres()
    schema = f"mailslot_test_{uuid.uuid4().hex[:12]}"
    admin(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(schema)
    finally:
        admin(f"DROP SCHEMA {schema} CASCADE")
