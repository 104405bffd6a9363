"""The team inbox web app: conversation list, conversation view, composer, collaboration
and live updates over Server-Sent Events."""
