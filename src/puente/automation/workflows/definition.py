"""What a workflow is, as data: its trigger, its conditions and its steps (format version
1). The builder edits it, the API and the CLI import and export it as JSON, and a
published version keeps it unchanged for every run that starts on it.

The models are flat (every step type shares one model, each using its own fields) so
that the builder's forms and the JSON files read the same way. Unknown fields are
refused, so a misspelt key is an error and not a silently ignored setting. Whether a
definition can *run* (targets exist, templates are approved, jumps land somewhere) is
checked at publish by `checks.problems`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from puente.errors import InvalidInput

FORMAT_VERSION = 1

TriggerType = Literal[
    "message_received",  # any message, the first of a new conversation, or keywords
    "conversation_opened",
    "conversation_closed",
    "tag_added",
    "field_changed",
    "broadcast_reply",
    "no_reply",  # nobody answered for N minutes (the customer, or the team)
    "outside_hours",  # a customer wrote while the number is closed
    "manual",  # started by an agent from a conversation
    "api",  # POST /api/v1/workflows/{id}/runs
]
TRIGGER_TYPES: tuple[str, ...] = TriggerType.__args__  # type: ignore[attr-defined]

StepType = Literal[
    "send_message",
    "send_template",
    "question",
    "assign",
    "unassign",
    "add_tag",
    "remove_tag",
    "set_field",
    "note",
    "close",
    "reopen",
    "snooze",
    "bot_off",
    "bot_on",
    "wait",
    "branch",
    "jump",
    "http",
    "start_workflow",
    "end",
]
STEP_TYPES: tuple[str, ...] = StepType.__args__  # type: ignore[attr-defined]

# Steps after which a run waits for time to pass or for the customer: a loop through one
# of them cannot spin, so it is not refused.
WAITING_STEPS = frozenset({"wait", "question"})
# Steps that message the customer (through the outbox).
SENDING_STEPS = frozenset({"send_message", "send_template", "question"})

Operator = Literal[
    "eq", "ne", "contains", "not_contains", "exists", "not_exists", "gt", "lt", "in", "not_in"
]
OPERATORS: tuple[str, ...] = Operator.__args__  # type: ignore[attr-defined]

# What a condition can look at (see conditions.py); `custom.<field>`, `answer.<step>`
# and `http.<step>.<field>` name their part after the dot.
CONDITION_FIELDS = (
    "contact.name",
    "contact.phone",
    "contact.tags",
    "contact.consent",
    "contact.segment",  # eq / in: in any of these segments (ids or names); ne / not_in
    "custom.",
    "channel.id",
    "conversation.status",
    "conversation.assignee_id",
    "conversation.team_id",
    "time.hhmm",
    "time.weekday",
    "business_hours",
    "answer.",
    "http.",
    "message.text",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rule(_Strict):
    field: str = Field(min_length=1, max_length=120)
    op: Operator = "eq"
    value: Any = None


class Conditions(_Strict):
    match: Literal["all", "any"] = "all"
    rules: list[Rule] = Field(default_factory=list, max_length=20)


class Trigger(_Strict):
    type: TriggerType
    # message_received: "any" message, the "first" of a new conversation, or "keyword".
    match: Literal["any", "first", "keyword"] = "any"
    # Matched against the whole message, accents and case ignored; one per line in the UI.
    keywords: list[str] = Field(default_factory=list, max_length=50)
    # keyword: "contains" a keyword as whole words, or "exact" (the message is it).
    keyword_mode: Literal["contains", "exact"] = "contains"
    tag: str | None = Field(default=None, max_length=100)  # tag_added
    field: str | None = Field(default=None, max_length=100)  # field_changed
    minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 30)  # no_reply
    waiting_on: Literal["team", "customer"] = "team"  # no_reply: who has not answered
    broadcast_id: int | None = None  # broadcast_reply: one broadcast, or any
    channel_ids: list[int] = Field(default_factory=list)  # only these numbers (any if none)
    conditions: Conditions | None = None


class TemplateRef(_Strict):
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=15)
    # Broadcasts' syntax: {"body.1": "{contact.name|amigo}"}.
    variables: dict[str, str] = Field(default_factory=dict)


class Option(_Strict):
    id: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=24)
    next: str | None = None


class Step(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    type: StepType
    title: str = Field(default="", max_length=120)  # the builder's label
    next: str | None = None  # the step after this one (none: the run ends)
    # On any step: the step runs only when these hold, else the run goes to `next`.
    when: Conditions | None = None
    # send_message, question, note: the text, with {variables}.
    text: str = Field(default="", max_length=4096)
    # send_template; on send_message, the fallback outside the 24-hour window.
    template: TemplateRef | None = None
    # question: up to 3 options go as buttons, up to 10 as a list.
    options: list[Option] = Field(default_factory=list, max_length=10)
    list_button: str = Field(default="", max_length=20)  # a list's button text
    retry_text: str = Field(default="", max_length=1024)  # asked once after a wrong answer
    on_invalid: str | None = None  # after the retry
    timeout_minutes: int | None = Field(default=None, ge=1)  # question: no answer within
    on_timeout: str | None = None
    save_as: str | None = Field(default=None, max_length=100)  # question: also a contact field
    # assign: an agent, a team (routing picks an agent), or both.
    agent_id: int | None = None
    team_id: int | None = None
    tag: str | None = Field(default=None, max_length=100)  # add_tag, remove_tag
    field: str | None = Field(default=None, max_length=100)  # set_field
    value: str = Field(default="", max_length=1024)  # set_field, with {variables}
    minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 90)  # wait, snooze
    seconds: int | None = Field(default=None, ge=1, le=3600)  # wait: a short pause
    until: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")  # wait
    conditions: Conditions | None = None  # branch: `next` when they hold
    otherwise: str | None = None  # branch: when they do not
    target: str | None = None  # jump
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"  # http
    url: str = Field(default="", max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None  # JSON, its strings with {variables}
    timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    on_failure: str | None = None  # http, and any step that fails (else the run fails)
    workflow_id: int | None = None  # start_workflow

    def exits(self) -> list[str]:
        """Every step id this step can go to."""
        targets = [self.next, self.on_invalid, self.on_timeout, self.otherwise, self.on_failure]
        if self.type == "jump":
            targets.append(self.target)
        targets += [option.next for option in self.options]
        return [t for t in targets if t]


class Definition(_Strict):
    version: Literal[1] = 1  # FORMAT_VERSION
    trigger: Trigger
    start: str | None = None  # the first step (default: the first listed)
    steps: list[Step] = Field(default_factory=list, max_length=200)

    def first_step(self) -> str | None:
        if self.start:
            return self.start
        return self.steps[0].id if self.steps else None

    def step(self, step_id: str) -> Step | None:
        for step in self.steps:
            if step.id == step_id:
                return step
        return None

    def dump(self) -> dict[str, Any]:
        """As JSON data, without the fields left at their defaults (files stay short)."""
        data: dict[str, Any] = self.model_dump(mode="json", exclude_defaults=True)
        data["version"] = FORMAT_VERSION
        return data


def parse_definition(data: Any) -> Definition:
    """A definition from JSON data, or InvalidInput naming each problem by its place."""
    if isinstance(data, dict) and "version" in data and data["version"] != FORMAT_VERSION:
        raise InvalidInput(
            f"This workflow file is format version {data['version']!r}; "
            f"this Puente reads version {FORMAT_VERSION}."
        )
    try:
        return Definition.model_validate(data)
    except ValidationError as exc:
        details = [
            {
                "field": ".".join(str(p) for p in error["loc"]) or "definition",
                "message": _msg(error),
            }
            for error in exc.errors()
        ]
        first = details[0]
        raise InvalidInput(
            f"The workflow is not valid: {first['field']}: {first['message']}"
            + (f" (and {len(details) - 1} more)" if len(details) > 1 else ""),
            details=details,
        ) from None


def _msg(error: Any) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    return str(error.get("msg", "invalid"))


def empty_definition(trigger: str = "message_received") -> Definition:
    return Definition(trigger=Trigger.model_validate({"type": trigger}), steps=[])
