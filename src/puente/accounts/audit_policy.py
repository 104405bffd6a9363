"""Which state-changing route writes which audit entry, and which write none and why.

Every POST, PUT, PATCH and DELETE route of the web UI and of /api/v1 is in exactly one of
the two tables below, as "METHOD /path" the way the application declares it.
`tests/accounts/test_audit_coverage.py` walks every such route: an audited one must write
its entry when called, an exempt one must have its reason here, and a route in neither
fails the test, so a new route cannot land unaudited. docs/security.md lists the same.

The entries themselves are written by the domain services (`do_*`), given the actor (the
gate's Actor, or the API token as `ApiCaller.actor`); automated callers (webhook
processing, workers, bots, a broadcast's per-recipient sends) pass none and write none.
Details hold ids, counts and names of things (fields, tags, templates), never message
text or a contact's personal data.
"""

from __future__ import annotations

from puente.accounts.audit import Action as A

API = "/api/v1"

AUDITED: dict[str, tuple[str, ...]] = {
    # -- first run, sign-in, one's own account --------------------------------------------
    "POST /setup": (A.WORKSPACE_CREATED,),
    "POST /login": (A.LOGIN,),
    "POST /login/code": (A.LOGIN,),
    "POST /logout": (A.LOGOUT,),
    "POST /forgot-password": (A.PASSWORD_RESET_REQUESTED,),
    "POST /reset/{token}": (A.PASSWORD_RESET,),
    "POST /invite/{token}": (A.INVITATION_ACCEPTED,),
    "POST /settings/profile": (A.PROFILE_CHANGED,),
    "POST /settings/profile/password": (A.PASSWORD_CHANGED,),
    "POST /settings/profile/2fa/confirm": (A.MFA_ENABLED,),
    "POST /settings/profile/2fa/disable": (A.MFA_DISABLED,),
    # -- administration ---------------------------------------------------------------------
    "POST /settings/users/invite": (A.INVITATION_SENT,),
    "POST /settings/invitations/{link_id}/resend": (A.INVITATION_SENT,),
    "POST /settings/invitations/{link_id}/revoke": (A.INVITATION_REVOKED,),
    "POST /settings/users/{user_id}/role": (A.ROLE_CHANGED,),
    "POST /settings/users/{user_id}/permissions": (A.PERMISSIONS_CHANGED,),
    "POST /settings/users/{user_id}/deactivate": (A.USER_DEACTIVATED,),
    "POST /settings/users/{user_id}/reactivate": (A.USER_REACTIVATED,),
    "POST /settings/users/{user_id}/reset-2fa": (A.MFA_RESET,),
    "POST /settings/users/{user_id}/reset-password": (A.PASSWORD_RESET_ISSUED,),
    "POST /settings/teams": (A.TEAM_CREATED,),
    "POST /settings/teams/{team_id}/members": (A.TEAM_MEMBERS_CHANGED,),
    "POST /settings/teams/{team_id}/delete": (A.TEAM_DELETED,),
    "POST /settings/teams/{team_id}/routing": (A.TEAM_ROUTING_CHANGED,),
    "POST /settings/availability": (A.SETTINGS_CHANGED,),
    "POST /settings/security": (A.SETTINGS_CHANGED,),
    "POST /settings/tokens": (A.TOKEN_CREATED,),
    "POST /settings/tokens/{token_id}/revoke": (A.TOKEN_REVOKED,),
    "POST /settings/privacy/hold": (A.LEGAL_HOLD_CHANGED,),
    "POST /settings/privacy/export": (A.CONTACT_EXPORTED,),
    "POST /settings/privacy/erase": (A.CONTACT_ERASED,),
    # The whole workspace downloaded (puente.portability.export.WORKSPACE_EXPORTED).
    "POST /settings/workspace/export": ("workspace.exported",),
    # -- the inbox ------------------------------------------------------------------------------
    "POST /inbox/c/{conversation_id}/send": (A.MESSAGE_SENT,),
    "POST /inbox/c/{conversation_id}/send-template": (A.MESSAGE_SENT,),
    "POST /inbox/c/{conversation_id}/send-media": (A.MESSAGE_SENT,),
    "POST /inbox/c/{conversation_id}/send-question": (A.MESSAGE_SENT,),
    "POST /inbox/c/{conversation_id}/react": (A.MESSAGE_SENT,),
    "POST /inbox/c/{conversation_id}/assign": (A.CONVERSATION_ASSIGNED,),
    "POST /inbox/c/{conversation_id}/close": (A.CONVERSATION_CLOSED,),
    "POST /inbox/c/{conversation_id}/reopen": (A.CONVERSATION_REOPENED,),
    "POST /inbox/c/{conversation_id}/snooze": (A.CONVERSATION_SNOOZED,),
    "POST /inbox/c/{conversation_id}/note": (A.NOTE_ADDED,),
    "POST /inbox/c/{conversation_id}/labels": (A.CONVERSATION_LABELLED,),
    "POST /inbox/c/{conversation_id}/labels/remove": (A.CONVERSATION_UNLABELLED,),
    "POST /inbox/c/{conversation_id}/bot": (A.BOT_PAUSED, A.BOT_RESUMED),
    "POST /inbox/c/{conversation_id}/contact": (A.CONTACT_UPDATED,),
    "POST /inbox/c/{conversation_id}/workflows/run": (A.WORKFLOW_RUN_STARTED,),
    "POST /inbox/snippets": (A.SNIPPET_CREATED,),
    "POST /inbox/snippets/{snippet_id}/delete": (A.SNIPPET_DELETED,),
    # -- contacts ---------------------------------------------------------------------------
    "POST /contacts/new": (A.CONTACT_CREATED,),
    "POST /contacts/import": (A.CONTACTS_IMPORTED,),
    "POST /contacts/{contact_id:int}/name": (A.CONTACT_UPDATED,),
    "POST /contacts/{contact_id:int}/fields": (A.CONTACT_UPDATED,),
    "POST /contacts/{contact_id:int}/fields/remove": (A.CONTACT_UPDATED,),
    "POST /contacts/{contact_id:int}/tags": (A.CONTACT_TAGS_CHANGED,),
    "POST /contacts/segments/new": (A.SEGMENT_SAVED,),
    "POST /contacts/segments/{segment_id:int}/edit": (A.SEGMENT_SAVED,),
    "POST /contacts/segments/{segment_id:int}/delete": (A.SEGMENT_DELETED,),
    "POST /contacts/{contact_id:int}/tags/remove": (A.CONTACT_TAGS_CHANGED,),
    "POST /contacts/{contact_id:int}/consent": (A.CONSENT_RECORDED,),
    "POST /contacts/{contact_id:int}/hold": (A.LEGAL_HOLD_CHANGED,),
    "POST /contacts/{contact_id:int}/export": (A.CONTACT_EXPORTED,),
    "POST /contacts/{contact_id:int}/erase": (A.CONTACT_ERASED,),
    "POST /contacts/{contact_id:int}/merge": ("contact.merged",),
    "POST /contacts/{contact_id:int}/merges/{merge_id:int}/split": ("contact.split",),
    # -- numbers, templates, broadcasts -----------------------------------------------------
    "POST /channels/manual": (A.CHANNEL_CONNECTED,),
    "POST /channels/onboard": (A.CHANNEL_ONBOARDING_STARTED,),
    "POST /channels/onboard/finish": (A.CHANNEL_ONBOARDING_STARTED, A.CHANNEL_CONNECTED),
    "POST /channels/{channel_id}/settings": (A.CHANNEL_SETTINGS_CHANGED,),
    "POST /channels/{channel_id}/routing": (A.CHANNEL_SETTINGS_CHANGED,),
    "POST /channels/{channel_id}/business-hours": (A.CHANNEL_SETTINGS_CHANGED,),
    "POST /channels/{channel_id}/survey": (A.CHANNEL_SETTINGS_CHANGED,),
    "POST /channels/{channel_id}/sync/{sync_type}": (A.CHANNEL_SYNC_REQUESTED,),
    "POST /channels/{channel_id}/chat-links": (A.CHAT_LINK_CREATED,),
    "POST /channels/{channel_id}/chat-links/{link_id}": (A.CHAT_LINK_UPDATED,),
    "POST /channels/{channel_id}/chat-links/{link_id}/delete": (A.CHAT_LINK_DELETED,),
    "POST /templates/new": (A.TEMPLATE_CREATED,),
    "POST /templates/sync": (A.TEMPLATES_SYNCED,),
    "POST /templates/{template_id}/delete": (A.TEMPLATE_DELETED,),
    "POST /broadcasts/new": (A.BROADCAST_CREATED,),
    "POST /broadcasts/{broadcast_id}/{action}": (
        A.BROADCAST_PAUSED,
        A.BROADCAST_RESUMED,
        A.BROADCAST_CANCELLED,
        A.BROADCAST_RETRIED,
    ),
    # -- the knowledge-base bot -------------------------------------------------------------
    "POST /bot/settings": (A.BOT_SETTINGS_CHANGED,),
    "POST /bot/entries/new": (A.KB_ENTRY_CREATED,),
    "POST /bot/entries/{entry_id}": (A.KB_ENTRY_UPDATED,),
    "POST /bot/entries/{entry_id}/delete": (A.KB_ENTRY_DELETED,),
    # -- workflows ----------------------------------------------------------------------------
    "POST /workflows/new": (A.WORKFLOW_CREATED,),
    "POST /workflows/import": (A.WORKFLOW_CREATED,),
    "POST /workflows/library/{key}": (A.WORKFLOW_CREATED,),
    "POST /workflows/{workflow_id}": (A.WORKFLOW_SAVED,),
    "POST /workflows/{workflow_id}/publish": (A.WORKFLOW_SAVED, A.WORKFLOW_PUBLISHED),
    "POST /workflows/{workflow_id}/enabled": (A.WORKFLOW_ENABLED, A.WORKFLOW_DISABLED),
    "POST /workflows/{workflow_id}/delete": (A.WORKFLOW_DELETED,),
    "POST /workflows/{workflow_id}/test": (A.WORKFLOW_RUN_STARTED,),
    "POST /workflows/{workflow_id}/runs/{run_id}/retry": (A.WORKFLOW_RUN_RETRIED,),
    # -- the REST API -----------------------------------------------------------------------
    f"POST {API}/messages": (A.MESSAGE_SENT,),
    f"POST {API}/messages/{{message_id}}/cancel": (A.MESSAGE_CANCELLED,),
    f"POST {API}/outbox/{{item_id}}/resend": (A.MESSAGE_RESENT,),
    f"POST {API}/contacts": (A.CONTACT_CREATED,),
    f"PATCH {API}/contacts/{{contact_id}}": (A.CONTACT_UPDATED,),
    f"DELETE {API}/contacts/{{contact_id}}": (A.CONTACT_ERASED,),
    f"POST {API}/contacts/{{contact_id}}/tags": (A.CONTACT_TAGS_CHANGED,),
    f"PUT {API}/contacts/{{contact_id}}/tags": (A.CONTACT_TAGS_CHANGED,),
    f"DELETE {API}/contacts/{{contact_id}}/tags/{{tag}}": (A.CONTACT_TAGS_CHANGED,),
    f"POST {API}/contacts/{{contact_id}}/consent": (A.CONSENT_RECORDED,),
    f"PUT {API}/contacts/{{contact_id}}/legal-hold": (A.LEGAL_HOLD_CHANGED,),
    f"POST {API}/contacts/{{contact_id}}/merge": ("contact.merged",),
    f"POST {API}/contacts/{{contact_id}}/merges/{{merge_id}}/split": ("contact.split",),
    f"POST {API}/channels": (A.CHANNEL_CONNECTED,),
    f"POST {API}/channels/onboardings": (A.CHANNEL_ONBOARDING_STARTED,),
    f"POST {API}/channels/onboardings/finish": (
        A.CHANNEL_ONBOARDING_STARTED,
        A.CHANNEL_CONNECTED,
    ),
    f"POST {API}/channels/{{channel_id}}/sync-requests": (A.CHANNEL_SYNC_REQUESTED,),
    f"PUT {API}/channels/{{channel_id}}/messaging-limit": (A.MESSAGING_LIMIT_SET,),
    f"POST {API}/channels/{{channel_id}}/chat-links": (A.CHAT_LINK_CREATED,),
    f"PATCH {API}/channels/{{channel_id}}/chat-links/{{link_id}}": (A.CHAT_LINK_UPDATED,),
    f"DELETE {API}/channels/{{channel_id}}/chat-links/{{link_id}}": (A.CHAT_LINK_DELETED,),
    f"POST {API}/templates": (A.TEMPLATE_CREATED,),
    f"POST {API}/templates/sync": (A.TEMPLATES_SYNCED,),
    f"POST {API}/templates/{{template_id}}/submit": (A.TEMPLATE_SUBMITTED,),
    f"DELETE {API}/templates/{{template_id}}": (A.TEMPLATE_DELETED,),
    f"POST {API}/broadcasts": (A.BROADCAST_CREATED,),
    f"POST {API}/broadcasts/{{broadcast_id}}/pause": (A.BROADCAST_PAUSED,),
    f"POST {API}/broadcasts/{{broadcast_id}}/resume": (A.BROADCAST_RESUMED,),
    f"POST {API}/broadcasts/{{broadcast_id}}/cancel": (A.BROADCAST_CANCELLED,),
    f"POST {API}/broadcasts/{{broadcast_id}}/retry-failed": (A.BROADCAST_RETRIED,),
    f"POST {API}/segments": (A.SEGMENT_SAVED,),
    f"PATCH {API}/segments/{{segment_id}}": (A.SEGMENT_SAVED,),
    f"DELETE {API}/segments/{{segment_id}}": (A.SEGMENT_DELETED,),
    f"PUT {API}/teams/{{team_id}}/routing": (A.TEAM_ROUTING_CHANGED,),
    f"PUT {API}/channels/{{channel_id}}/routing": (A.CHANNEL_SETTINGS_CHANGED,),
    f"PUT {API}/channels/{{channel_id}}/business-hours": (A.CHANNEL_SETTINGS_CHANGED,),
    f"POST {API}/events/{{event_id}}/retry": (A.WEBHOOK_RETRIED,),
    f"POST {API}/events/changes/{{change_id}}/retry": (A.WEBHOOK_RETRIED,),
    f"POST {API}/kb/entries": (A.KB_ENTRY_CREATED,),
    f"PATCH {API}/kb/entries/{{entry_id}}": (A.KB_ENTRY_UPDATED,),
    f"DELETE {API}/kb/entries/{{entry_id}}": (A.KB_ENTRY_DELETED,),
    f"PUT {API}/kb/settings": (A.BOT_SETTINGS_CHANGED,),
    f"POST {API}/workflows": (A.WORKFLOW_CREATED,),
    f"POST {API}/workflows/import": (A.WORKFLOW_CREATED,),
    f"PUT {API}/workflows/{{workflow_id}}": (A.WORKFLOW_SAVED,),
    f"POST {API}/workflows/{{workflow_id}}/publish": (A.WORKFLOW_PUBLISHED,),
    f"POST {API}/workflows/{{workflow_id}}/enable": (A.WORKFLOW_ENABLED,),
    f"POST {API}/workflows/{{workflow_id}}/disable": (A.WORKFLOW_DISABLED,),
    f"DELETE {API}/workflows/{{workflow_id}}": (A.WORKFLOW_DELETED,),
    f"POST {API}/workflows/{{workflow_id}}/runs": (A.WORKFLOW_RUN_STARTED,),
    f"POST {API}/workflow-runs/{{run_id}}/retry": (A.WORKFLOW_RUN_RETRIED,),
    f"POST {API}/webhooks": (A.WEBHOOK_ENDPOINT_CREATED,),
    f"PATCH {API}/webhooks/{{endpoint_id}}": (A.WEBHOOK_ENDPOINT_UPDATED,),
    f"DELETE {API}/webhooks/{{endpoint_id}}": (A.WEBHOOK_ENDPOINT_DELETED,),
    f"POST {API}/webhooks/{{endpoint_id}}/rotate-secret": (A.WEBHOOK_SECRET_ROTATED,),
    f"POST {API}/webhooks/{{endpoint_id}}/test": (A.WEBHOOK_TEST_SENT,),
    f"POST {API}/webhooks/{{endpoint_id}}/deliveries/{{delivery_id}}/resend": (
        A.WEBHOOK_DELIVERY_RESENT,
    ),
    f"POST {API}/webhooks/{{endpoint_id}}/resend-failed": (A.WEBHOOK_DELIVERY_RESENT,),
    # -- outgoing webhooks' pages (Settings > Webhooks) ---------------------------------------
    "POST /settings/webhooks": (A.WEBHOOK_ENDPOINT_CREATED,),
    "POST /settings/webhooks/{endpoint_id}": (A.WEBHOOK_ENDPOINT_UPDATED,),
    "POST /settings/webhooks/{endpoint_id}/enable": (A.WEBHOOK_ENDPOINT_UPDATED,),
    "POST /settings/webhooks/{endpoint_id}/disable": (A.WEBHOOK_ENDPOINT_UPDATED,),
    "POST /settings/webhooks/{endpoint_id}/rotate": (A.WEBHOOK_SECRET_ROTATED,),
    "POST /settings/webhooks/{endpoint_id}/test": (A.WEBHOOK_TEST_SENT,),
    "POST /settings/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend": (
        A.WEBHOOK_DELIVERY_RESENT,
    ),
    "POST /settings/webhooks/{endpoint_id}/resend-failed": (A.WEBHOOK_DELIVERY_RESENT,),
    "POST /settings/webhooks/{endpoint_id}/delete": (A.WEBHOOK_ENDPOINT_DELETED,),
}

EXEMPT: dict[str, str] = {
    # Not a person's action.
    "POST /webhooks/whatsapp": "Meta's deliveries, signed by Meta; not a person's action",
    # Reading markers and presence: they change nothing anyone else relies on, and happen
    # all day long.
    "POST /inbox/c/{conversation_id}/unread": (
        "a reading marker, like opening a conversation (which marks it read)"
    ),
    "POST /inbox/c/{conversation_id}/typing": "a typing indicator; nothing is stored",
    "POST /inbox/notifications/read": "the notification bell's read marker, one's own",
    "POST /inbox/notifications/{notification_id}/read": (
        "the notification bell's read marker, one's own"
    ),
    "POST /me/availability": "one's own presence (available, away), switched many times a day",
    "POST /me/active": "the browser saying its person is there, at most once a minute",
    "POST /me/language": "one's own display language",
    "POST /settings/profile/notifications": "one's own notification choices",
    "POST /settings/profile/2fa/start": (
        "makes an unconfirmed two-factor seed for oneself; nothing takes effect until "
        "/2fa/confirm, which is audited"
    ),
    # Checks and previews: they answer and store nothing.
    "POST /templates/check": "checks a template draft against Meta's rules; stores nothing",
    f"POST {API}/templates/check": "checks a template against Meta's rules; stores nothing",
    f"POST {API}/templates/{{template_id}}/preview": (
        "renders a template with sample values; stores nothing"
    ),
    "POST /bot/test": "tries a question against the knowledge base; stores nothing",
    f"POST {API}/segments/preview": "counts the contacts a filter selects; stores nothing",
}
