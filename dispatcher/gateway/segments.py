"""Segments over REST for admins: ``/api/admin/segments``, beside the campaign routes.

Every route needs a bearer token with the ``dispatcher:admin`` scope; any other token gets
403. The routes go through the face (``d.campaigns.segments``), as the CLI does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.errors import DispatcherError, NotFoundError, SegmentInUseError, ValidationError
from dispatcher.gateway.auth import Principal, require_admin
from dispatcher.gateway.rest import COMMON_RESPONSES, Gw, run_blocking
from dispatcher.gateway.schemas import Problem

Admin = Annotated[Principal, Depends(require_admin)]
SegmentName = Annotated[str, Path(min_length=1, max_length=64, description="A segment name")]

router = APIRouter(
    prefix="/api/admin/segments",
    tags=["campaigns"],
    responses={
        **COMMON_RESPONSES,
        403: {"model": Problem, "description": "The token lacks the dispatcher:admin scope"},
        404: {"model": Problem, "description": "No such segment"},
        409: {"model": Problem, "description": "A campaign that may still run uses it"},
    },
)


class SegmentIn(BaseModel):
    """A segment to create (see ``Segments.create``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    filter: dict[str, Any]
    description: str | None = Field(default=None, max_length=2000)


class SegmentChange(BaseModel):
    """What to change in a segment."""

    model_config = ConfigDict(extra="forbid")

    filter: dict[str, Any] | None = None
    description: str | None = Field(default=None, max_length=2000)


async def _call(fn: Any) -> Any:
    try:
        return await run_blocking(fn)
    except NotFoundError:
        raise HTTPException(404, "not found") from None
    except SegmentInUseError as exc:
        raise HTTPException(409, str(exc)) from None
    except ValidationError as exc:
        raise HTTPException(400, str(exc)) from None
    except DispatcherError as exc:  # pragma: no cover - none other is raised today
        raise HTTPException(400, str(exc)) from None


@router.get("", summary="List segments")
async def list_segments(caller: Admin, gw: Gw) -> list[dict[str, Any]]:
    infos = await _call(lambda: gw.dispatcher.campaigns.segments.list())
    return [i.to_dict() for i in infos]


@router.post("", status_code=201, summary="Create a segment")
async def create_segment(caller: Admin, gw: Gw, body: SegmentIn) -> dict[str, Any]:
    info = await _call(
        lambda: gw.dispatcher.campaigns.segments.create(
            body.name, body.filter, description=body.description
        )
    )
    return dict(info.to_dict())


@router.get("/{name}", summary="A segment")
async def get_segment(caller: Admin, gw: Gw, name: SegmentName) -> dict[str, Any]:
    info = await _call(lambda: gw.dispatcher.campaigns.segments.get(name))
    return dict(info.to_dict())


@router.patch("/{name}", summary="Change a segment's filter or description")
async def update_segment(
    caller: Admin, gw: Gw, name: SegmentName, body: SegmentChange
) -> dict[str, Any]:
    info = await _call(
        lambda: gw.dispatcher.campaigns.segments.update(
            name, filter=body.filter, description=body.description
        )
    )
    return dict(info.to_dict())


@router.delete("/{name}", status_code=204, summary="Delete a segment no campaign still uses")
async def delete_segment(caller: Admin, gw: Gw, name: SegmentName) -> Response:
    await _call(lambda: gw.dispatcher.campaigns.segments.delete(name))
    return Response(status_code=204)
