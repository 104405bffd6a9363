"""The builder's words: names of triggers, steps, operators and run states, a trigger
said in a sentence, and the checks' problems in the reader's language. Texts are marked
with N_ and translated where they are shown."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from puente.web.i18n import N_

Translate = Callable[..., str]  # (msgid, **params) -> text in the reader's language

TRIGGER_LABELS = {
    "message_received": N_("A message is received"),
    "conversation_opened": N_("A conversation is opened"),
    "conversation_closed": N_("A conversation is closed"),
    "tag_added": N_("A tag is added to a contact"),
    "field_changed": N_("A contact field changes"),
    "broadcast_reply": N_("A customer replies to a broadcast"),
    "no_reply": N_("Nobody replies for a while"),
    "outside_hours": N_("A customer writes while the number is closed"),
    "manual": N_("An agent starts it from a conversation"),
    "api": N_("An API call starts it"),
}

STEP_LABELS = {
    "send_message": N_("Send a message"),
    "send_template": N_("Send a template"),
    "question": N_("Ask a question"),
    "assign": N_("Assign"),
    "unassign": N_("Unassign"),
    "add_tag": N_("Add a tag"),
    "remove_tag": N_("Remove a tag"),
    "set_field": N_("Set a contact field"),
    "note": N_("Add an internal note"),
    "close": N_("Close the conversation"),
    "reopen": N_("Reopen the conversation"),
    "snooze": N_("Snooze the conversation"),
    "bot_off": N_("Turn the bot off"),
    "bot_on": N_("Turn the bot on"),
    "wait": N_("Wait"),
    "branch": N_("Branch on conditions"),
    "jump": N_("Go to a step"),
    "http": N_("Call an HTTP endpoint"),
    "start_workflow": N_("Start another workflow"),
    "end": N_("End the run"),
}

OPERATOR_LABELS = {
    "eq": N_("is"),
    "ne": N_("is not"),
    "contains": N_("contains"),
    "not_contains": N_("does not contain"),
    "exists": N_("is set"),
    "not_exists": N_("is not set"),
    "gt": N_("is greater than"),
    "lt": N_("is less than"),
    "in": N_("is one of (a, b, c)"),
    "not_in": N_("is none of (a, b, c)"),
}

RUN_STATES = {
    "ready": N_("Running"),
    "waiting": N_("Waiting"),
    "asking": N_("Waiting for an answer"),
    "done": N_("Done"),
    "failed": N_("Failed"),
    "stopped": N_("Stopped"),
}

STEP_OUTCOMES = {
    "ok": N_("Done"),
    "failed": N_("Failed"),
    "waiting": N_("Waiting"),
    "skipped": N_("Skipped"),
}


def quoted(words: list[str]) -> str:
    return ", ".join(f"“{w}”" for w in words)


def describe_trigger(_: Translate, trigger: dict[str, Any]) -> str:
    """The trigger as a sentence for the workflows' list."""
    kind = trigger.get("type", "")
    if kind == "message_received":
        match = trigger.get("match", "any")
        keywords = [k for k in trigger.get("keywords") or [] if k.strip()]
        if match == "first":
            return _("The first message of a new conversation")
        if match == "keyword" and trigger.get("keyword_mode") == "exact":
            return _("A message that is exactly %(words)s", words=quoted(keywords))
        if match == "keyword":
            return _("A message containing %(words)s", words=quoted(keywords))
        return _("Any message received")
    if kind == "tag_added" and trigger.get("tag"):
        return _("The tag “%(tag)s” is added to a contact", tag=trigger["tag"])
    if kind == "field_changed" and trigger.get("field"):
        return _("The contact field “%(field)s” changes", field=trigger["field"])
    if kind == "no_reply" and trigger.get("minutes"):
        if trigger.get("waiting_on") == "customer":
            return _(
                "The customer has not replied for %(minutes)s minutes",
                minutes=trigger["minutes"],
            )
        return _("The team has not replied for %(minutes)s minutes", minutes=trigger["minutes"])
    label = TRIGGER_LABELS.get(kind)
    return _(label) if label else kind


# The checks name a step, a template or a field inside their message; these patterns take
# the name out so the message can be translated with it put back in.
_PROBLEMS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"^Two steps are called “(?P<name>.*)”\.$"),
        N_("Two steps are called “%(name)s”."),
    ),
    (
        re.compile(r"^The first step “(?P<name>.*)” does not exist\.$"),
        N_("The first step “%(name)s” does not exist."),
    ),
    (
        re.compile(r"^It goes to “(?P<name>.*)”, which is not a step\.$"),
        N_("It goes to “%(name)s”, which is not a step."),
    ),
    (
        re.compile(r"^The template “(?P<name>.*)” \((?P<language>[^)]*)\) does not exist\.$"),
        N_("The template “%(name)s” (%(language)s) does not exist."),
    ),
    (
        re.compile(
            r"^The template “(?P<name>.*)” \((?P<language>[^)]*)\) is not approved \((?P<state>[^)]*)\)\.$"
        ),
        N_("The template “%(name)s” (%(language)s) is not approved (%(state)s)."),
    ),
    (
        re.compile(r"^Steps loop back to “(?P<name>.*)” without a wait or a question\.$"),
        N_("Steps loop back to “%(name)s” without a wait or a question."),
    ),
    (re.compile(r"^Unknown field “(?P<name>.*)”\.$"), N_("Unknown field “%(name)s”.")),
    # A workflow file's, at import.
    (
        re.compile(r"^Unknown field in the workflow file: (?P<names>.*)\.$"),
        N_("Unknown field in the workflow file: %(names)s."),
    ),
    (
        re.compile(r"^This is not a Puente workflow file \(format should be “(?P<format>.*)”\)\.$"),
        N_("This is not a Puente workflow file (format should be “%(format)s”)."),
    ),
    (
        re.compile(
            r"^This workflow file is (?:format )?version (?P<found>.*); "
            r"this Puente reads version (?P<version>\d+)\.$"
        ),
        N_("This workflow file is version %(found)s; this Puente reads version %(version)s."),
    ),
    (re.compile(r"^The workflow is not valid: .*$"), N_("The workflow in this file is not valid:")),
    (re.compile(r"^unknown field$"), N_("unknown field")),
    # What pydantic says of a value the form let through.
    (re.compile(r"^Field required$"), N_("This is required.")),
    (
        re.compile(r"^String should have at most (?P<n>\d+) characters?$"),
        N_("Write at most %(n)s characters."),
    ),
    (
        re.compile(r"^String should have at least (?P<n>\d+) characters?$"),
        N_("Write at least %(n)s characters."),
    ),
    (
        re.compile(r"^Input should be greater than(?: or equal to)? (?P<n>[\d.]+)$"),
        N_("Give a number from %(n)s up."),
    ),
    (
        re.compile(r"^Input should be less than(?: or equal to)? (?P<n>[\d.]+)$"),
        N_("Give a number up to %(n)s."),
    ),
    (re.compile(r"^List should have at most (?P<n>\d+) items?.*$"), N_("At most %(n)s.")),
    (re.compile(r"^String should match pattern .*$"), N_("This is not in the expected form.")),
    (re.compile(r"^Input should be .*$"), N_("This value is not one of those allowed.")),
]


def msgid_of(message: str) -> tuple[str, dict[str, str]]:
    """The catalogue's msgid of a problem and the names it holds."""
    for pattern, msgid in _PROBLEMS:
        found = pattern.match(message)
        if found:
            return msgid, found.groupdict()
    return message, {}


def problem_text(_: Translate, message: str) -> str:
    """A problem of the checks (or of the form) in the reader's language."""
    msgid, params = msgid_of(message)
    return _(msgid, **params) if params else _(msgid)
