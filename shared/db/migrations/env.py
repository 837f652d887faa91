"""Alembic environment: the models' metadata, the URL from the programmatic config."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import shared.db.models  # noqa: F401  (registers every table on the metadata)
from shared.db.base import Base
from shared.db.partitions import models_only, partition_names

config = context.config
target_metadata = Base.metadata


def run_offline() -> None:
    """Emit SQL without a database (``alembic upgrade --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "shared.db.migrate sets sqlalchemy.url"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        partitions = partition_names(connection)
        # Alembic commits only a transaction it began itself.
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            compare_server_default=True,
            # Day partitions are made at run time, not declared by the models.
            include_name=models_only(partitions),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
