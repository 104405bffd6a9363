"""Routing: who answers a conversation. Each team has a strategy (by hand, round robin,
least busy) and a capacity per agent; a number may send its new conversations to a team.
A conversation that finds nobody available waits in its team's queue until someone is.

The step in `puente.automation.reactions` puts a customer's conversation in its team's
queue; the routing worker (`worker.py`, on the job module) assigns what is queued.
"""
