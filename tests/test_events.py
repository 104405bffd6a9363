"""Domain events: delivered after commit to the subscribers of their type only, never for a
rolled-back change, and every type survives the trip to another process."""

from __future__ import annotations

import datetime as dt
import json
import types
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from puente.db.session import Database
from puente.events import (
    Event,
    MessageStored,
    NoteAdded,
    bus,
    dumps,
    event_types,
    loads,
    publish,
)


def _note(note_id: int) -> NoteAdded:
    return NoteAdded(workspace_id=1, conversation_id=2, note_id=note_id)


def test_an_event_of_a_rolled_back_unit_of_work_is_never_delivered(db: Database) -> None:
    seen: list[Event] = []
    unsubscribe = bus.subscribe(Event, seen.append)
    try:
        with pytest.raises(RuntimeError), db.unit_of_work(unscoped="test") as session:
            publish(session, _note(1))
            raise RuntimeError("the change failed")
        # The next transaction on a fresh session commits without the dropped event.
        with db.unit_of_work(unscoped="test"):
            pass
    finally:
        unsubscribe()
    assert seen == []


def test_a_committed_event_reaches_its_types_subscribers_once_after_commit(
    db: Database,
) -> None:
    notes: list[NoteAdded] = []
    messages: list[MessageStored] = []
    unsubscribe = [
        bus.subscribe(NoteAdded, notes.append),
        bus.subscribe(MessageStored, messages.append),
    ]
    try:
        with db.unit_of_work(unscoped="test") as session:
            publish(session, _note(7))
            assert notes == []  # not before the commit
    finally:
        for u in unsubscribe:
            u()
    assert notes == [_note(7)]
    assert messages == []


def _sample(annotation: Any) -> Any:
    """A value of the annotated type, so that every field of every event is exercised."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _sample(args[0])
    if origin in (Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)))
    if origin is tuple:
        return (_sample(args[0]),)
    if origin is dict:
        return {"1": _sample(args[1])}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation(**_fields(annotation))
    samples: dict[Any, Any] = {
        bool: True,
        int: 7,
        str: "ñandú",
        dt.datetime: dt.datetime(2026, 12, 6, 10, 30, 15, 123, tzinfo=dt.UTC),
        Any: "x",
    }
    return samples[annotation]


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {name: _sample(field.annotation) for name, field in model.model_fields.items()}


@pytest.mark.parametrize("name", sorted(event_types()))
def test_every_event_type_comes_back_from_another_process_as_itself(name: str) -> None:
    event_type = event_types()[name]
    event = event_type(**_fields(event_type))
    back = loads(dumps(event))
    assert type(back) is event_type
    assert back == event
    browser = json.loads(json.dumps(event.to_browser()))
    assert (browser["kind"], browser["workspace_id"]) == (event_type.kind, 7)


def test_every_module_that_reacts_is_loaded_before_the_first_event() -> None:
    """A process that publishes (a CLI command, say) must run every reaction, not only
    those some import happened to load: after `load_reactions`, importing all of Puente
    registers no further reaction. Run in a new interpreter, where nothing is imported
    yet."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import importlib, pkgutil
        import puente
        from puente import events
        events.load_reactions()
        before = {(t.__name__, f.__module__, f.__qualname__) for t, f in events._REACTIONS}
        for info in pkgutil.walk_packages(puente.__path__, "puente."):
            if ".migrations." in info.name or info.name.endswith("__main__"):
                continue
            importlib.import_module(info.name)
        after = {(t.__name__, f.__module__, f.__qualname__) for t, f in events._REACTIONS}
        print(len(before))
        print(sorted(after - before))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert int(out[0]) > 10  # the automation, chat links, webhooks, surveys and reports
    assert out[1] == "[]", f"reactions registered by modules not in REACTION_MODULES: {out[1]}"
