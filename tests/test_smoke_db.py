from sqlalchemy import text
from sqlalchemy.orm import Session


def test_database_is_at_head(session: Session) -> None:
    from db.migrate import head_revision

    current = session.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert current == head_revision()
