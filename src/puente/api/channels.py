"""REST API for channels: connect a number by hand, list and get them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from puente.api.common import error_responses
from puente.api.deps import ApiCaller, RuntimeDep, SessionDep, scoped
from puente.channels import service
from puente.channels.models import ChannelMode
from puente.channels.schemas import ChannelOut

router = APIRouter(prefix="/channels", tags=["channels"])

ReadCaller = Annotated[ApiCaller, scoped("channels:read")]
WriteCaller = Annotated[ApiCaller, scoped("channels:write")]


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone_number_id: str = Field(
        pattern=r"^[0-9]{1,64}$", description="from WhatsApp > API Setup (digits)"
    )
    waba_id: str = Field(
        pattern=r"^[0-9]{1,64}$", description="the WhatsApp Business Account id (digits)"
    )
    display_phone_number: str = Field(
        max_length=40,
        pattern=r"^[^0-9]*([0-9][^0-9]*){6,20}$",
        description="with country code, any format; stored as digits",
    )
    name: str | None = Field(default=None, max_length=200, description="a label for agents")
    mode: ChannelMode = Field(
        default=ChannelMode.CLOUD_API,
        description="coexistence when the number stays in the Business app (20 msg/s), "
        "else cloud_api (80 msg/s)",
    )
    access_token: str = Field(
        max_length=4096,
        pattern=r"\S",
        repr=False,
        description="a system-user token with whatsapp_business_messaging and "
        "whatsapp_business_management; stored encrypted, never returned",
    )


@router.get(
    "",
    response_model=list[ChannelOut],
    summary="List the workspace's channels",
    responses=error_responses(403),
)
def list_channels(caller: ReadCaller, session: SessionDep) -> list[ChannelOut]:
    return [ChannelOut.of(c) for c in service.list_channels(session, caller.workspace_id)]


@router.post(
    "",
    response_model=ChannelOut,
    status_code=201,
    summary="Connect a number with ids and a token copied from Meta",
    responses=error_responses(400, 403, 409),
)
def create_channel(
    body: ChannelCreate, caller: WriteCaller, session: SessionDep, runtime: RuntimeDep
) -> ChannelOut:
    channel = service.do_create_channel(
        session,
        runtime.settings,
        runtime.secrets,
        workspace_id=caller.workspace_id,
        new=service.NewChannel(
            phone_number_id=body.phone_number_id,
            waba_id=body.waba_id,
            display_phone_number=body.display_phone_number,
            access_token=body.access_token,
            name=body.name,
            mode=body.mode,
        ),
        actor=caller.actor,
    )
    return ChannelOut.of(channel)


@router.get(
    "/{channel_id}",
    response_model=ChannelOut,
    summary="Get a channel",
    responses=error_responses(403, 404),
)
def get_channel(
    channel_id: Annotated[int, Path(ge=1, le=2**62)], caller: ReadCaller, session: SessionDep
) -> ChannelOut:
    return ChannelOut.of(service.access_channel(session, caller.workspace_id, channel_id))
