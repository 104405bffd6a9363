"""The background workers a process runs: registered here for both the web process (which
runs them in-process unless told not to) and `puente worker`, which must not pay for
building the web app it never serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from puente.runtime import Runtime

if TYPE_CHECKING:
    from puente.conversations.realtime import RealtimeHub
    from puente.ingest.worker import EventWriter


@dataclass(frozen=True)
class Installed:
    """What the web routes need of the background parts."""

    hub: RealtimeHub
    writer: EventWriter


def install_workers(runtime: Runtime) -> Installed:
    """Register every background worker on the runtime: the web process runs them in-process
    (unless told not to), `puente worker` runs them without building the web app."""
    from puente.accounts.privacy import register as register_retention
    from puente.automation.routing.worker import install as install_routing
    from puente.automation.workflows.worker import install as install_workflows
    from puente.conversations.media_worker import install as install_media_worker
    from puente.conversations.realtime import HubCloser, RealtimeHub
    from puente.events import bus
    from puente.ingest.worker import install as install_ingest
    from puente.integrations.webhooks.worker import install as install_webhooks
    from puente.outbound.broadcasts.worker import register as register_broadcasts
    from puente.outbound.outbox.worker import install as install_outbox
    from puente.outbound.templates.service import register as register_templates
    from puente.reports.worker import install as install_reports

    # The hub relays this process's committed events to the agents' streams (and, on
    # PostgreSQL, to the other processes' with NOTIFY), so a worker process needs it too.
    hub = RealtimeHub(runtime.db, bus)
    runtime.workers.append(HubCloser(hub))
    writer = install_ingest(runtime)
    register_templates(runtime)
    install_outbox(runtime)
    register_broadcasts(runtime)
    install_media_worker(runtime)
    register_retention(runtime)
    install_routing(runtime)
    install_workflows(runtime)
    install_reports(runtime)
    install_webhooks(runtime)
    return Installed(hub, writer)
