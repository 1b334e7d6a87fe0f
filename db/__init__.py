"""Database layer: models, engines, queries and Alembic migrations. Imports nothing of the app."""
