"""Workspaces, users, roles, teams, authentication, API tokens and the audit log."""
