"""Campaigns over REST for admins: ``/api/admin/campaigns``.

Every route needs a bearer token with the ``dispatcher:admin`` scope
(:data:`~dispatcher.gateway.auth.ADMIN_SCOPE`); any other token gets 403. The routes go
through the face (``d.campaigns``), as the CLI does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.errors import (
    CampaignStateError,
    DispatcherError,
    NotFoundError,
    ValidationError,
)
from dispatcher.gateway.auth import Principal, require_admin
from dispatcher.gateway.rest import COMMON_RESPONSES, Gw, run_blocking
from dispatcher.gateway.schemas import ID_MAX, Problem

Admin = Annotated[Principal, Depends(require_admin)]
CampaignId = Annotated[int, Path(ge=1, le=ID_MAX, description="A campaign id")]

router = APIRouter(
    prefix="/api/admin/campaigns",
    tags=["campaigns"],
    responses={
        **COMMON_RESPONSES,
        403: {"model": Problem, "description": "The token lacks the dispatcher:admin scope"},
        404: {"model": Problem, "description": "No such campaign"},
        409: {"model": Problem, "description": "Not possible in the campaign's state"},
    },
)


class CampaignIn(BaseModel):
    """A campaign to create (see ``Campaigns.create``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    type: str = Field(min_length=1, max_length=128)
    audience: dict[str, Any]
    data: dict[str, Any] | None = None
    channels: list[str] | None = None
    priority: str | None = None
    send_rates: dict[str, int] | None = None
    start_at: datetime | None = None
    cron: str | None = Field(default=None, max_length=128)
    timezone: str = Field(default="UTC", max_length=64)
    end_at: datetime | None = None
    #: The campaign's own templates: channel -> locale -> part -> source.
    templates: dict[str, dict[str, dict[str, str]]] | None = None


async def _call(fn: Any) -> Any:
    try:
        return await run_blocking(fn)
    except NotFoundError:
        raise HTTPException(404, "not found") from None
    except CampaignStateError as exc:
        raise HTTPException(409, str(exc)) from None
    except ValidationError as exc:
        raise HTTPException(400, str(exc)) from None
    except DispatcherError as exc:  # a campaign template that does not render
        raise HTTPException(400, str(exc)) from None


@router.get("", summary="List campaigns")
async def list_campaigns(caller: Admin, gw: Gw) -> list[dict[str, Any]]:
    infos = await _call(lambda: gw.dispatcher.campaigns.list())
    return [i.to_dict() for i in infos]


@router.post("", status_code=201, summary="Create a campaign")
async def create_campaign(caller: Admin, gw: Gw, body: CampaignIn) -> dict[str, Any]:
    values = body.model_dump()
    name = values.pop("name")
    info = await _call(lambda: gw.dispatcher.campaigns.create(name, **values))
    return dict(info.to_dict())


@router.get("/{campaign_id}", summary="A campaign with its runs and progress")
async def get_campaign(caller: Admin, gw: Gw, campaign_id: CampaignId) -> dict[str, Any]:
    info = await _call(lambda: gw.dispatcher.campaigns.get(campaign_id))
    return dict(info.to_dict())


@router.get("/{campaign_id}/preview", summary="Dry run: who would get it now; writes nothing")
async def preview_campaign(caller: Admin, gw: Gw, campaign_id: CampaignId) -> dict[str, Any]:
    preview = await _call(lambda: gw.dispatcher.campaigns.preview(campaign_id))
    return dict(preview.to_dict())


def _steer(verb: str, summary: str) -> None:
    async def steer(caller: Admin, gw: Gw, campaign_id: CampaignId) -> dict[str, Any]:
        result = await _call(lambda: getattr(gw.dispatcher.campaigns, verb)(campaign_id))
        return dict(result.to_dict())

    steer.__name__ = f"{verb}_campaign"
    router.post(f"/{{campaign_id}}/{verb}", summary=summary)(steer)


_steer("start", "Start a run now")
_steer("pause", "Hold the running run after its current chunk")
_steer("resume", "Go on with a paused run")
_steer("cancel", "Stop for good; what was not sent is skipped")
