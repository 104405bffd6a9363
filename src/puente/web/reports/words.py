"""The words of the report pages: each report's title and what it tells, and one label
for every key a report speaks in (figures, chart series, tables, columns, and the row
values that are keys, such as a message's source). All are msgids, translated where shown."""

from __future__ import annotations

from collections.abc import Callable

from puente.web.i18n import N_

Translate = Callable[[str], str]

# key: (title, what it tells)
REPORTS: dict[str, tuple[str, str]] = {
    "conversations": (
        N_("Conversations"),
        N_("New, reopened and resolved conversations by day, and when customers write."),
    ),
    "responses": (
        N_("Responses"),
        N_("How long customers waited for the first answer and for each answer."),
    ),
    "resolutions": (
        N_("Resolutions"),
        N_("How many conversations were resolved, by whom, and how long they took."),
    ),
    "messages": (
        N_("Messages"),
        N_(
            "Messages by who sent them (customers, agents, the owner's phone, the bot...) and type."
        ),
    ),
    "contacts": (
        N_("Contacts"),
        N_("New contacts by where they came from, and who opted in or out."),
    ),
    "assignments": (
        N_("Assignments"),
        N_("Conversations assigned and reassigned per agent and team, and the wait in the queue."),
    ),
    "leaderboard": (
        N_("Leaderboard"),
        N_("Each agent, and the owner's phone, side by side: resolved, answer times, CSAT."),
    ),
    "users": (
        N_("Users"),
        N_("Time each agent spent online, away and offline."),
    ),
    "broadcasts": (
        N_("Broadcasts"),
        N_("Recipients sent, delivered, read, replied and failed, by template."),
    ),
    "costs": (
        N_("Costs"),
        N_("Billable and free messages and the estimated spend, by category, country and number."),
    ),
    "csat": (
        N_("Customer satisfaction"),
        N_("The customers' scores after a conversation closed, per agent and team, with comments."),
    ),
}

PRESETS: dict[str, str] = {
    "today": N_("Today"),
    "yesterday": N_("Yesterday"),
    "last_7_days": N_("Last 7 days"),
    "last_30_days": N_("Last 30 days"),
    "last_90_days": N_("Last 90 days"),
    "this_month": N_("This month"),
    "last_month": N_("Last month"),
}

# Every key of figures, series, tables and columns.
KEYS: dict[str, str] = {
    # conversations
    "new": N_("New"),
    "reopened": N_("Reopened"),
    "resolved": N_("Resolved"),
    "by_day": N_("By day"),
    "by_hour": N_("By day of the week and hour"),
    "date": N_("Date"),
    "weekday": N_("Day"),
    # durations
    "first_response": N_("First response"),
    "response_time": N_("Response time"),
    "resolution_time": N_("Time to resolve"),
    "queue_wait": N_("Wait in the queue"),
    "first_response_median": N_("First response, median"),
    "first_response_average": N_("First response, average"),
    "first_response_p90": N_("First response, 90th percentile"),
    "first_response_median_bh": N_("First response, median in business hours"),
    "response_time_median": N_("Response time, median"),
    "response_time_average": N_("Response time, average"),
    "response_time_p90": N_("Response time, 90th percentile"),
    "response_time_median_bh": N_("Response time, median in business hours"),
    "resolution_time_median": N_("Time to resolve, median"),
    "resolution_time_average": N_("Time to resolve, average"),
    "resolution_time_p90": N_("Time to resolve, 90th percentile"),
    "resolution_time_median_bh": N_("Time to resolve, median in business hours"),
    "queue_wait_median": N_("Wait in the queue, median"),
    "queue_wait_p90": N_("Wait in the queue, 90th percentile"),
    "summary": N_("Summary"),
    "first_response_by_source": N_("First response by who answered"),
    "measure": N_("Measure"),
    "count": N_("Count"),
    "median": N_("Median"),
    "average": N_("Average"),
    "p90": N_("90th percentile"),
    "median_bh": N_("Median (business hours)"),
    "average_bh": N_("Average (business hours)"),
    "p90_bh": N_("90th percentile (business hours)"),
    # people
    "agent": N_("Agent"),
    "team": N_("Team"),
    "agents": N_("Agents"),
    "by_agent": N_("By agent"),
    "by_team": N_("By team"),
    "assigned": N_("Assigned"),
    "reassigned": N_("Reassigned"),
    "leaderboard": N_("Leaderboard"),
    "online": N_("Online"),
    "away": N_("Away"),
    "offline": N_("Offline"),
    # messages and contacts
    "messages": N_("Messages"),
    "source": N_("Source"),
    "type": N_("Type"),
    "by_source": N_("By source"),
    "by_type": N_("By type"),
    "contacts_new": N_("New contacts"),
    "opted_in": N_("Opted in"),
    "opted_out": N_("Opted out"),
    # broadcasts
    "sent": N_("Sent"),
    "delivered": N_("Delivered"),
    "read": N_("Read"),
    "replied": N_("Replied"),
    "failed": N_("Failed"),
    "recipients": N_("Recipients"),
    "template": N_("Template"),
    "by_template": N_("By template"),
    "failures": N_("Failures by reason"),
    "reason": N_("Reason"),
    # costs
    "billable": N_("Billable"),
    "free": N_("Free"),
    "spend": N_("Estimated spend"),
    "category": N_("Category"),
    "country": N_("Country"),
    "number": N_("Number"),
    "month": N_("Month"),
    "by_number": N_("By number and month"),
    # satisfaction
    "csat": N_("CSAT"),
    "responses": N_("Responses"),
    "satisfied": N_("Satisfied (4 or 5)"),
    "comments": N_("Latest comments"),
    "score": N_("Score"),
    "comment": N_("Comment"),
}

# Row values and series that are keys: who sent a message, where a contact came from.
VALUES: dict[str, str] = {
    "customer": N_("Customer"),
    "agent": N_("Agent"),
    "business_app": N_("Business app"),
    "bot": N_("Bot"),
    "workflow": N_("Workflow"),
    "broadcast": N_("Broadcast"),
    "api": N_("API"),
    "history": N_("Imported history"),
    "whatsapp": N_("WhatsApp"),
    "manual": N_("Added by hand"),
    "import": N_("Imported file"),
    "unknown": N_("Unknown"),
    "unassigned": N_("Unassigned"),
    "no_team": N_("No team"),
    "first_response": N_("First response"),
    "response_time": N_("Response time"),
    # message types
    "text": N_("Text"),
    "image": N_("Image"),
    "audio": N_("Audio"),
    "video": N_("Video"),
    "document": N_("Document"),
    "sticker": N_("Sticker"),
    "location": N_("Location"),
    "contacts": N_("Contact card"),
    "interactive": N_("Buttons or list"),
    "button": N_("Button reply"),
    "reaction": N_("Reaction"),
    "template": N_("Template"),
    "order": N_("Order"),
    "system": N_("System notice"),
    "unsupported": N_("Unsupported"),
    # pricing categories and why a message was free
    "marketing": N_("Marketing"),
    "utility": N_("Utility"),
    "authentication": N_("Authentication"),
    "authentication_international": N_("Authentication (international)"),
    "service": N_("Service"),
    "app": N_("Business app"),
    "free_customer_service": N_("Reply inside the 24-hour window"),
    "free_entry_point": N_("Free entry point (ad or page button)"),
    "regular": N_("Free category"),
    # broadcast states
    "sent": N_("Sent"),
    "delivered": N_("Delivered"),
    "read": N_("Read"),
    "replied": N_("Replied"),
    "failed": N_("Failed"),
}

# The table columns whose values are keys to translate (other text is a name).
KEYED_COLUMNS = frozenset({"source", "type", "measure", "category", "reason"})
# Names that stand for somebody who is not a person of the workspace.
SPECIAL_NAMES = frozenset({"business_app", "unassigned", "no_team"})

# The source filter's choices, per report (see reports.access.FILTERS_OF).
SOURCE_CHOICES: dict[str, tuple[str, ...]] = {
    "messages": (
        "customer",
        "agent",
        "business_app",
        "bot",
        "workflow",
        "broadcast",
        "api",
        "history",
    ),
    "responses": ("agent", "business_app", "bot", "workflow", "api"),
    "contacts": ("whatsapp", "business_app", "history", "api", "manual", "import"),
}


def key_label(_: Translate, key: str) -> str:
    """A figure's, series' or column's label; a key we have no word for shows as itself."""
    if key.startswith("source_"):
        return value_label(_, key.removeprefix("source_"))
    if key in KEYS:
        return _(KEYS[key])
    return value_label(_, key)


def value_label(_: Translate, value: str) -> str:
    return _(VALUES[value]) if value in VALUES else value
