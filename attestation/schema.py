"""Shared pydantic building blocks for attestation payloads: strict models and constrained types."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints


class StrictModel(BaseModel):
    """No extra fields, no coercion (a "1" is not 1), no NaN, immutable once built."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _to_utc(moment: datetime) -> datetime:
    # Aware datetimes in any zone are the same instant in UTC; one zone keeps payloads reproducible.
    return moment.astimezone(timezone.utc)


Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Count = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
