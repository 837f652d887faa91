"""Database: SQLAlchemy 2.0 models, engine factories, Alembic migrations."""
