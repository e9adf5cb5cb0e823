"""Which PixelDojo model runs when nobody says, and what a model's `apiId` may look like.

Kept in core because the settings name the default model and every layer above reads it.
"""

from typing import Annotated

from pydantic import Field

DEFAULT_MODEL = "seedream-4"

ModelId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="PixelDojo model apiId",
    ),
]
