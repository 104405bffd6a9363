"""A sent template message as its customer read it: the template's header, body, footer and
buttons with the values the message carried, for the conversation and the list preview."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from puente.channels.models import Channel
from puente.outbound.models import MessageTemplate
from puente.outbound.templates.preview import Preview, render_preview


def _language(wire: Mapping[str, Any]) -> str:
    language = wire.get("language")
    code = language.get("code") if isinstance(language, Mapping) else language
    return str(code or "")


def _text_of(parameter: Any) -> str:
    """What a parameter puts in the text: its text, or the fallback a currency or date
    parameter carries; media and other kinds put nothing."""
    if not isinstance(parameter, Mapping):
        return ""
    if parameter.get("text") is not None:
        return str(parameter["text"])
    for kind in ("currency", "date_time"):
        value = parameter.get(kind)
        if isinstance(value, Mapping) and value.get("fallback_value"):
            return str(value["fallback_value"])
    return ""


def sent_values(wire: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The values of a template message's `components`, by part and variable, as
    `render_preview` takes them: positional parameters fill {{1}}, {{2}}… in order,
    named ones their `parameter_name`; a URL button's parameter is its suffix."""
    values: dict[str, dict[str, str]] = {"header": {}, "body": {}, "buttons": {}}
    components = wire.get("components")
    for comp in components if isinstance(components, list) else []:
        if not isinstance(comp, Mapping):
            continue
        kind = str(comp.get("type") or "").lower()
        parameters = comp.get("parameters")
        parameters = parameters if isinstance(parameters, list) else []
        if kind in ("header", "body"):
            for i, parameter in enumerate(parameters, start=1):
                named = parameter.get("parameter_name") if isinstance(parameter, Mapping) else None
                values[kind][str(named or i)] = _text_of(parameter)
        elif kind == "button" and parameters:
            values["buttons"][str(comp.get("index", ""))] = _text_of(parameters[0])
    return values


def render_sent(components: list[dict[str, Any]], wire: Mapping[str, Any]) -> Preview:
    """The template with the message's own values; never the template's review samples."""
    return render_preview(components, sent_values(wire), samples=False)


def sent_text(session: Session, channel: Channel, wire: Mapping[str, Any]) -> str | None:
    """The body the customer reads, for a template message about to go out on `channel`
    (its preview in the list and its text for search); None for a template not known here."""
    components = session.scalar(
        select(MessageTemplate.components)
        .where(
            MessageTemplate.workspace_id == channel.workspace_id,
            MessageTemplate.waba_id == channel.waba_id,
            MessageTemplate.name == str(wire.get("name") or ""),
            MessageTemplate.language == _language(wire),
        )
        .limit(1)
    )
    if not components:
        return None
    return render_sent(list(components), wire).body or None


def sent_templates(
    session: Session, workspace_id: int, channel_id: int, messages: Iterable[Any]
) -> dict[int, Preview]:
    """Each template message among `messages` (of one conversation, on `channel_id`)
    rendered as sent, by message id: one query, and none when there is no template."""
    sent = [m for m in messages if m.type == "template" and isinstance(m.content, Mapping)]
    if not sent:
        return {}
    names = {str(m.content.get("name") or "") for m in sent}
    rows = session.execute(
        select(MessageTemplate.name, MessageTemplate.language, MessageTemplate.components)
        .join(
            Channel,
            and_(
                Channel.waba_id == MessageTemplate.waba_id,
                Channel.workspace_id == MessageTemplate.workspace_id,
            ),
        )
        .where(
            Channel.id == channel_id,
            MessageTemplate.workspace_id == workspace_id,
            MessageTemplate.name.in_(names),
        )
    ).tuples()
    known = {(name, language): components for name, language, components in rows}
    shown: dict[int, Preview] = {}
    for m in sent:
        components = known.get((str(m.content.get("name") or ""), _language(m.content)))
        if components:
            shown[m.id] = render_sent(list(components), m.content)
    return shown
