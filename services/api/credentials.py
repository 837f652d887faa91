"""How callers present credentials to both APIs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

AuthorizationHeader = Annotated[
    str | None,
    Header(
        alias="Authorization",
        description="`Bearer cp_…` (LMS or teacher API key) or `Bearer <student token>`",
    ),
]
