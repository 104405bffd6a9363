"""Meta's WhatsApp Cloud API wire format: webhook models, signatures, the Graph client, errors.

This package knows nothing of Puente's tables.
"""
