"""The workflow builder's helpers: its form read into a definition (form.py), the words
that describe triggers, steps and problems (words.py) and the choices its selects offer
(choices.py). The pages themselves are puente.web.routes.workflows and workflow_runs."""
