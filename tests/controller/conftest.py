"""The results store each controller test runs against: SQLite, and a real PostgreSQL."""

import pytest

from controller.store import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'c.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    s = Store(url)
    yield s
    if request.param == "postgresql":
        from controller.models import Base
        Base.metadata.drop_all(s.engine)
    s.close()
