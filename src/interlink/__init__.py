"""Interlink: a local, wire-compatible CRM org plus the integration middleware around it."""

from interlink.errors import InterlinkError

__version__ = "0.1.0"

__all__ = ["InterlinkError", "__version__"]
