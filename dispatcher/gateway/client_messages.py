"""What a browser may send on the socket, validated in one pass (JSON parsing included).

Every integer is bounded to the range the database's ids take (signed 64 bits), so a
huge number is a ``bad_request`` answer on the open socket, never an overflow in the
driver. Unknown fields are ignored, as the frontend may add its own.
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic
from pydantic import BaseModel, Field, TypeAdapter

from dispatcher.gateway.schemas import ID_MAX

#: The smallest signed 64-bit integer (a ``resume`` from below 0 replays everything).
ID_MIN = -(2**63)
#: Longest ``since`` string: an ISO 8601 timestamp with microseconds and an offset fits.
SINCE_MAX_LENGTH = 64


class Ping(BaseModel):
    """``{"type": "ping"}``: answered with ``pong``."""

    type: Literal["ping"]


class MarkRead(BaseModel):
    """``{"type": "mark_read", "id": 123}``."""

    type: Literal["mark_read"]
    id: Annotated[int, Field(strict=True, ge=1, le=ID_MAX)]


class Resume(BaseModel):
    """``{"type": "resume", "since": <last id, its digits, or an ISO timestamp>}``."""

    type: Literal["resume"]
    since: (
        Annotated[int, Field(strict=True, ge=ID_MIN, le=ID_MAX)]
        | Annotated[str, Field(max_length=SINCE_MAX_LENGTH)]
        | None
    ) = None


ClientMessage = Ping | MarkRead | Resume

_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(
    Annotated[ClientMessage, Field(discriminator="type")]
)

#: What each field must be, as told to a client that got it wrong.
FIELD_RULES = {
    "id": f"id must be an integer from 1 to {ID_MAX}",
    "since": (
        f"since must be a notification id (an integer up to {ID_MAX}) or an ISO 8601 timestamp"
    ),
}
TYPE_RULE = "type must be one of: ping, mark_read, resume"


class BadMessage(Exception):
    """A client message that is not one of ours; ``detail`` says what is wrong.

    Internal to the socket (answered with ``{"type": "error", "error": "bad_request"}``),
    so it does not join the public error hierarchy.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def parse(raw: str | bytes) -> ClientMessage:
    """Parse and validate one text or binary frame.

    Raises:
        BadMessage: with a precise, bounded ``detail`` that never echoes the input.
    """
    try:
        return _ADAPTER.validate_json(raw)
    except pydantic.ValidationError as exc:
        raise BadMessage(_describe(exc)) from None


def _describe(exc: pydantic.ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    kind = first["type"]
    if kind == "json_invalid":
        return "message is not valid JSON"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "message must be a JSON object"
    if kind.startswith("union_tag"):
        return TYPE_RULE
    # A field error: ("mark_read", "id") or ("resume", "since", "constrained-int").
    loc = first["loc"]
    field = str(loc[1]) if len(loc) > 1 else ""
    return FIELD_RULES.get(field, TYPE_RULE)
