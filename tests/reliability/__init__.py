"""Reliability drills (``nox -s reliability``; ``memsift drill`` runs them longer)."""
