"""Typed bodies of `POST /{phone_number_id}/messages`, checked against Meta's limits (§7).

`build_payload` turns a message type and its wire object into the exact request body;
anything Meta would refuse for its shape (a 4,097-character text, a fourth reply button,
an eleventh list row) is refused here first, naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_REPLY_BUTTONS = 3
MAX_LIST_ROWS = 10
MAX_LIST_SECTIONS = 10


class SendValidationError(ValueError):
    """The message body breaks a rule; `problems` lists (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        first_field, first_message = problems[0]
        super().__init__(f"{first_field}: {first_message}")

    @property
    def field(self) -> str:
        return self.problems[0][0]


class Wire(BaseModel):
    # Unknown keys are refused: a typo ("caption " or "boddy") would otherwise be dropped.
    model_config = ConfigDict(extra="forbid")


class Text(Wire):
    body: str = Field(min_length=1, max_length=MAX_TEXT)
    preview_url: bool | None = None


class _Media(Wire):
    id: str | None = Field(default=None, min_length=1, description="an uploaded media id")
    link: str | None = Field(
        default=None, pattern=r"^https?://\S+$", max_length=2048, description="a public URL"
    )

    @model_validator(mode="after")
    def _one_source(self) -> _Media:
        if (self.id is None) == (self.link is None):
            raise ValueError("give exactly one of 'id' (uploaded media) or 'link' (a URL)")
        return self


class Image(_Media):
    caption: str | None = Field(default=None, max_length=MAX_CAPTION)


class Video(_Media):
    caption: str | None = Field(default=None, max_length=MAX_CAPTION)


class Audio(_Media):
    pass


class Sticker(_Media):
    pass


class Document(_Media):
    caption: str | None = Field(default=None, max_length=MAX_CAPTION)
    filename: str | None = Field(default=None, min_length=1, max_length=240)


class Location(Wire):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(default=None, max_length=1000)
    address: str | None = Field(default=None, max_length=1000)


class Reaction(Wire):
    message_id: str = Field(min_length=1, description="the wamid reacted to")
    emoji: str = Field(max_length=16, description="an empty string removes the reaction")


class ContactName(BaseModel):
    model_config = ConfigDict(extra="allow")
    formatted_name: str = Field(min_length=1)


class ContactCard(BaseModel):
    """One vCard-like contact; Meta's optional blocks (phones, emails, org...) pass through."""

    model_config = ConfigDict(extra="allow")
    name: ContactName


class TemplateLanguage(Wire):
    code: str = Field(min_length=2, max_length=16, pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")
    policy: Literal["deterministic"] | None = None


class TemplateParameter(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(min_length=1)


class TemplateComponent(Wire):
    type: Literal["header", "body", "footer", "button", "carousel", "limited_time_offer"]
    sub_type: str | None = None
    index: int | str | None = None
    parameters: list[TemplateParameter] | None = None
    cards: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _buttons_need_position(self) -> TemplateComponent:
        if self.type == "button" and (self.sub_type is None or self.index is None):
            raise ValueError("a button component needs 'sub_type' and 'index'")
        return self


class Template(Wire):
    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: TemplateLanguage
    components: list[TemplateComponent] | None = None


class _TextBlock(Wire):
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class _ShortText(Wire):
    text: str = Field(min_length=1, max_length=60)


class _ButtonBody(Wire):
    text: str = Field(min_length=1, max_length=1024)


class InteractiveHeader(Wire):
    type: Literal["text", "image", "video", "document"]
    text: str | None = Field(default=None, min_length=1, max_length=60)
    image: Image | None = None
    video: Video | None = None
    document: Document | None = None

    @model_validator(mode="after")
    def _matching_object(self) -> InteractiveHeader:
        if getattr(self, self.type) is None:
            raise ValueError(f"a '{self.type}' header needs its '{self.type}' object")
        return self


class _ReplyId(Wire):
    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1, max_length=20)


class ReplyButton(Wire):
    type: Literal["reply"] = "reply"
    reply: _ReplyId


class _ButtonAction(Wire):
    buttons: list[ReplyButton] = Field(min_length=1, max_length=MAX_REPLY_BUTTONS)

    @model_validator(mode="after")
    def _unique(self) -> _ButtonAction:
        ids = [b.reply.id for b in self.buttons]
        titles = [b.reply.title for b in self.buttons]
        if len(set(ids)) != len(ids) or len(set(titles)) != len(titles):
            raise ValueError("reply buttons need different ids and titles")
        return self


class ButtonInteractive(Wire):
    type: Literal["button"]
    header: InteractiveHeader | None = None
    body: _ButtonBody
    footer: _ShortText | None = None
    action: _ButtonAction


class ListRow(Wire):
    id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=24)
    description: str | None = Field(default=None, max_length=72)


class ListSection(Wire):
    title: str | None = Field(default=None, min_length=1, max_length=24)
    rows: list[ListRow] = Field(min_length=1)


class _ListAction(Wire):
    button: str = Field(min_length=1, max_length=20)
    sections: list[ListSection] = Field(min_length=1, max_length=MAX_LIST_SECTIONS)

    @model_validator(mode="after")
    def _row_limits(self) -> _ListAction:
        rows = [row for section in self.sections for row in section.rows]
        if len(rows) > MAX_LIST_ROWS:
            raise ValueError(
                f"a list holds at most {MAX_LIST_ROWS} rows across all sections "
                f"(this one has {len(rows)})"
            )
        if len({row.id for row in rows}) != len(rows):
            raise ValueError("list rows need different ids")
        if len(self.sections) > 1 and any(s.title is None for s in self.sections):
            raise ValueError("every section needs a title when there is more than one")
        return self


class _ListHeader(Wire):
    type: Literal["text"]
    text: str = Field(min_length=1, max_length=60)


class ListInteractive(Wire):
    type: Literal["list"]
    header: _ListHeader | None = None
    body: _TextBlock
    footer: _ShortText | None = None
    action: _ListAction


class _CtaParameters(Wire):
    display_text: str = Field(min_length=1, max_length=20)
    url: str = Field(pattern=r"^https?://\S+$", max_length=2048)


class _CtaAction(Wire):
    name: Literal["cta_url"]
    parameters: _CtaParameters


class CtaUrlInteractive(Wire):
    type: Literal["cta_url"]
    header: InteractiveHeader | None = None
    body: _ButtonBody
    footer: _ShortText | None = None
    action: _CtaAction


Interactive = Annotated[
    ButtonInteractive | ListInteractive | CtaUrlInteractive, Field(discriminator="type")
]

MessageType = Literal[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "template",
    "interactive",
    "location",
    "contacts",
    "reaction",
]

_MODELS: dict[str, Any] = {
    "text": Text,
    "image": Image,
    "video": Video,
    "audio": Audio,
    "document": Document,
    "sticker": Sticker,
    "template": Template,
    "interactive": Interactive,
    "location": Location,
    "contacts": Annotated[list[ContactCard], Field(min_length=1, max_length=20)],
    "reaction": Reaction,
}
_ADAPTERS = {name: TypeAdapter(model) for name, model in _MODELS.items()}
MESSAGE_TYPES: tuple[str, ...] = tuple(_MODELS)


def _problems(exc: ValidationError, prefix: str) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in (prefix, *err["loc"]))
        out.append((path, str(err["msg"]).removeprefix("Value error, ")))
    return out


def validate_content(message_type: str, content: Any) -> Any:
    """The wire object for `message_type`, normalised (None fields dropped); raises
    SendValidationError naming the bad field."""
    adapter = _ADAPTERS.get(message_type)
    if adapter is None:
        raise SendValidationError(
            [("type", f"unknown message type; use one of: {', '.join(MESSAGE_TYPES)}")]
        )
    try:
        value = adapter.validate_python(content)
    except ValidationError as exc:
        raise SendValidationError(_problems(exc, message_type)) from None
    return adapter.dump_python(value, mode="json", exclude_none=True)


def build_payload(
    *, to: str, message_type: str, content: Any, reply_to: str | None = None
) -> dict[str, Any]:
    """The exact body of `POST /{phone_number_id}/messages` (without callback data)."""
    wire = validate_content(message_type, content)
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": message_type,
        message_type: wire,
    }
    if reply_to:
        if message_type == "reaction":
            raise SendValidationError([("reply_to", "a reaction cannot quote a message")])
        payload["context"] = {"message_id": reply_to}
    return payload


def preview_text(message_type: str, wire: Any) -> str | None:
    """Plain text of a validated wire object, for previews and search."""
    if not isinstance(wire, dict):
        if message_type == "contacts" and isinstance(wire, list) and wire:
            names = [c.get("name", {}).get("formatted_name", "") for c in wire]
            return ", ".join(n for n in names if n) or None
        return None
    if message_type == "text":
        return str(wire.get("body") or "") or None
    if message_type in ("image", "video", "document"):
        return wire.get("caption") or wire.get("filename")
    if message_type == "interactive":
        body = wire.get("body") or {}
        return body.get("text")
    if message_type == "template":
        return str(wire.get("name"))
    if message_type == "location":
        return wire.get("name") or wire.get("address")
    if message_type == "reaction":
        return wire.get("emoji") or None
    return None
