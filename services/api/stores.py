"""The settings every API process needs: its stores and the token secret, all required."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, SecretStr

from shared.settings import AuthSettings, StoreSettings, load


class ApiStoreSettings(StoreSettings, AuthSettings):
    """The store and auth pieces with the URLs and the token secret required.

    Unset means "embedded" only to ``classpulse up``, which starts the embedded
    servers and hands their URLs to the APIs; an API itself needs them set.
    """

    database_url: str = Field(min_length=1)
    redis_url: str = Field(min_length=1)
    token_secret: SecretStr


@dataclass(frozen=True, slots=True)
class RequiredStores:
    database_url: str
    redis_url: str
    token_secret: str


def required_stores() -> RequiredStores:
    """PostgreSQL and Redis URLs and the token secret; ``ConfigError`` names what is missing."""
    stores = load(ApiStoreSettings)
    return RequiredStores(
        stores.database_url, stores.redis_url, stores.token_secret.get_secret_value()
    )
