"""The settings every API process needs: its stores and the token secret, all required."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import AuthSettings, StoreSettings


class ApiStoreSettings(StoreSettings, AuthSettings):
    """The store and auth pieces with the URLs and the token secret required.

    Unset means "embedded" only to ``classpulse up``, which starts the embedded
    servers and hands their URLs to the APIs; an API itself needs them set.
    """

    database_url: str = Field(min_length=1)
    redis_url: str = Field(min_length=1)
    token_secret: SecretStr
