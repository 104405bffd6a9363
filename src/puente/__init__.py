"""Puente: a self-hosted WhatsApp team inbox built for coexistence."""

__version__ = "0.1.0"
