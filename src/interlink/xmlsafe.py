"""Refuse XML that declares a DOCTYPE or entities before anything parses it for real.

Used for every XML Interlink reads from outside (SOAP requests, SFDX metadata files): expat checks
well-formedness and stops at the first DOCTYPE or entity declaration, in any encoding, so entity
expansion and external entities never reach ElementTree.
"""

from __future__ import annotations

from xml.parsers import expat


class XmlDeclarationError(ValueError):
    """The document declares a DOCTYPE or entities."""


def check_untrusted_xml(data: bytes) -> None:
    """Raise :class:`XmlDeclarationError` for declarations, ``expat.ExpatError`` for malformed XML."""

    class _Declared(Exception):
        pass

    def _refuse(*_args: object) -> None:
        raise _Declared

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    try:
        parser.Parse(data, True)
    except _Declared:
        raise XmlDeclarationError("DOCTYPE and entity declarations are not allowed") from None


__all__ = ["XmlDeclarationError", "check_untrusted_xml"]
