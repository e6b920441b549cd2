"""The partner SOAP API's ``login()`` call (``POST /services/Soap/u/{version}``), as pure functions.

Nothing here touches a web framework or the store: a route reads the body, calls
:func:`parse_login_request`, checks :func:`login_unavailable` / the org's ``soap_login_enabled``
setting, verifies the credentials itself, and answers with :func:`login_response` (HTTP 200) or
:func:`fault_response` (HTTP :attr:`SoapFault.http_status`, always 500 as SOAP 1.1 requires), both
with :data:`CONTENT_TYPE`.

What real clients rely on (wire.md §1.9, §3.6, gotcha 7):

* simple-salesforce finds ``sessionId`` / ``serverUrl`` with ``minidom.getElementsByTagName``, which
  matches the *qualified* name, so the result elements are unprefixed (default namespace
  ``urn:partner.soap.sforce.com``), exactly as the platform sends them.
* The Pub/Sub API Python sample reads the answer **by position**: ``root[0][0][0]`` is
  Body → loginResponse → result, ``result[3]`` serverUrl, ``result[4]`` sessionId, ``result[6]``
  userInfo, ``userInfo[8]`` organizationId. So there is no ``soapenv:Header`` and every child is
  written, in partner-WSDL order, even when nil.
* Failures carry the literal ``sf:exceptionCode`` / ``sf:exceptionMessage`` elements (namespace
  ``urn:fault.partner.soap.sforce.com``); simple-salesforce looks them up by qualified name.

Fault choices (documented here because the platform's exact answer is not always known):

* Unparseable XML, a document that is not a SOAP 1.1 envelope, an empty Body, or an operation outside
  the partner namespace: ``faultcode`` ``soapenv:Client`` with a plain ``faultstring`` and no
  ``detail`` — the shape the platform's SOAP stack uses for transport-level errors (e.g.
  ``Premature end of file.`` for an empty body, ``No operation available for request {ns}op, please
  check the WSDL for the service.`` for an unknown namespace). Their internal ``exception_code`` is
  :data:`CLIENT_EXCEPTION_CODE`; it does not appear on the wire.
* A SOAP 1.2 envelope: ``soapenv:VersionMismatch`` (the partner API speaks SOAP 1.1 only).
* DOCTYPE / ENTITY declarations are refused before ElementTree sees the body (no XXE, no entity
  expansion): ``soapenv:Client``, "DOCTYPE is disallowed ...".
* A partner-namespace operation other than ``login`` (``query``, ``create`` ...):
  ``sf:INVALID_OPERATION`` — Interlink implements only ``login()`` on this API.
* Missing ``username`` / ``password`` elements: ``sf:INVALID_LOGIN`` (same answer as bad credentials).
* ``login()`` at API v65.0+: ``sf:INVALID_OPERATION`` with the platform's text (forcedotcom/wsc #363);
  org setting off: ``sf:INVALID_OPERATION`` with the platform's "disabled" text plus an OAuth hint.

Login faults use ``sf:LoginFault`` in ``detail``; every other ``sf:`` fault uses
``sf:UnexpectedErrorFault`` (the partner WSDL's catch-all, also what the platform sends for
``INVALID_SESSION_ID``). Which detail type the platform uses for the v65 / disabled faults is
unconfirmed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.parsers import expat
from xml.sax.saxutils import escape as _escape_text

from interlink.xmlsafe import XmlDeclarationError, check_untrusted_xml

__all__ = [
    "CLIENT_EXCEPTION_CODE",
    "CONTENT_TYPE",
    "ENVELOPE_NS",
    "FAULT_NS",
    "INVALID_LOGIN_MESSAGE",
    "MAX_REQUEST_BYTES",
    "PARTNER_NS",
    "SOAP12_ENVELOPE_NS",
    "SOAP_LOGIN_REMOVED_VERSION",
    "SoapFault",
    "fault_response",
    "invalid_login",
    "login_disabled_fault",
    "login_response",
    "login_unavailable",
    "parse_login_request",
    "soap_server_urls",
]

ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENVELOPE_NS = "http://www.w3.org/2003/05/soap-envelope"
PARTNER_NS = "urn:partner.soap.sforce.com"
FAULT_NS = "urn:fault.partner.soap.sforce.com"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

#: What the platform sends with SOAP answers (success and fault alike).
CONTENT_TYPE = "text/xml;charset=UTF-8"

#: First API version whose partner endpoint no longer offers ``login()`` (Winter '26 / v65.0).
SOAP_LOGIN_REMOVED_VERSION: tuple[int, int] = (65, 0)

#: Request bodies above this size are refused without parsing (a login envelope is < 2 KB).
MAX_REQUEST_BYTES = 64 * 1024

#: Internal code for ``soapenv:Client`` / ``soapenv:VersionMismatch`` faults (not sent on the wire).
CLIENT_EXCEPTION_CODE = "INVALID_REQUEST"

INVALID_LOGIN_MESSAGE = "Invalid username, password, security token; or user locked out."

#: Exception codes whose faults carry ``sf:LoginFault`` rather than ``sf:UnexpectedErrorFault``.
_LOGIN_FAULT_CODES = frozenset(
    {
        "INVALID_LOGIN",
        "LOGIN_MUST_USE_SECURITY_TOKEN",
        "LOGIN_DURING_RESTRICTED_DOMAIN",
        "LOGIN_DURING_RESTRICTED_TIME",
        "LOGIN_CHALLENGE_ISSUED",
        "LOGIN_CHALLENGE_PENDING",
        "INVALID_ORG_ID",
        "PASSWORD_LOCKOUT",
        "INVALID_TEMPORARY_PASSWORD",
        "SERVER_UNAVAILABLE",
        "ORG_LOCKED",
        "INACTIVE_OWNER_OR_USER",
    }
)

_VERSION_RE = re.compile(r"^(\d{1,3})(?:\.(\d{1,2}))?$")
# Characters XML 1.0 cannot carry at all, even escaped.
_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class SoapFault(Exception):
    """A SOAP fault to answer with.

    ``fault_code`` defaults to ``"sf:" + exception_code``. ``sf:`` faults render
    ``faultstring`` as ``"CODE: message"`` plus a ``detail`` with ``sf:exceptionCode`` /
    ``sf:exceptionMessage``; ``soapenv:*`` faults render the bare message and no detail.
    """

    http_status = 500

    def __init__(self, exception_code: str, message: str, fault_code: str | None = None) -> None:
        super().__init__(f"{exception_code}: {message}")
        self.exception_code = exception_code
        self.message = message
        self.fault_code = fault_code or f"sf:{exception_code}"

    @property
    def has_detail(self) -> bool:
        return self.fault_code.startswith("sf:")

    @property
    def fault_string(self) -> str:
        return f"{self.exception_code}: {self.message}" if self.has_detail else self.message

    @property
    def detail_type(self) -> str:
        """``LoginFault`` or ``UnexpectedErrorFault`` (the partner WSDL fault element used in ``detail``)."""
        return "LoginFault" if self.exception_code in _LOGIN_FAULT_CODES else "UnexpectedErrorFault"

    def __repr__(self) -> str:
        return f"SoapFault({self.exception_code!r}, {self.message!r}, fault_code={self.fault_code!r})"


def _client_fault(message: str) -> SoapFault:
    return SoapFault(CLIENT_EXCEPTION_CODE, message, fault_code="soapenv:Client")


# -- fault constructors --------------------------------------------------------------------------------------


def restricted_login(time_restricted: bool) -> SoapFault:
    """A login outside the profile's login hours or login IP ranges (the partner API's ExceptionCode texts)."""
    if time_restricted:
        return SoapFault("LOGIN_DURING_RESTRICTED_TIME", "The user is not allowed to log in during this time period.")
    return SoapFault("LOGIN_DURING_RESTRICTED_DOMAIN", "The user is not allowed to log in from this IP address.")


def invalid_login() -> SoapFault:
    """Bad username or password (the platform never says which)."""
    return SoapFault("INVALID_LOGIN", INVALID_LOGIN_MESSAGE)


def _parse_version(version: str) -> tuple[int, int] | None:
    match = _VERSION_RE.match(version.strip().strip("/"))
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def login_unavailable(version: str) -> SoapFault | None:
    """The fault for a ``login()`` posted to ``/services/Soap/u/{version}``, or None when it is offered.

    v65.0 and later answer the platform's ``INVALID_OPERATION``; a version that is not ``NN`` or
    ``NN.N`` answers ``UNSUPPORTED_API_VERSION``.
    """
    parsed = _parse_version(version)
    if parsed is None:
        return SoapFault("UNSUPPORTED_API_VERSION", f"Invalid Api version specified on URL: {version}")
    if parsed >= SOAP_LOGIN_REMOVED_VERSION:
        shown = f"{parsed[0]}.{parsed[1]}"
        return SoapFault(
            "INVALID_OPERATION",
            f"The SOAP Login operation is not available in the API version specified ({shown}). "
            "Refer to the documentation for supported versions.",
        )
    return None


def login_disabled_fault() -> SoapFault:
    """The fault when the org's ``soap_login_enabled`` setting is off (platform text + OAuth hint)."""
    return SoapFault(
        "INVALID_OPERATION",
        "SOAP API login() is disabled by default in this org. Contact the org administrator to enable "
        "SOAP API login(). Use OAuth 2.0 (/services/oauth2/token) instead.",
    )


# -- request -------------------------------------------------------------------------------------------------


def _refuse_declarations(body: bytes) -> None:
    """Check well-formedness with expat and refuse any DOCTYPE / ENTITY declaration, in any encoding."""
    try:
        check_untrusted_xml(body)
    except XmlDeclarationError:
        raise _client_fault(
            'DOCTYPE is disallowed when the feature "http://apache.org/xml/features/disallow-doctype-decl" '
            "set to true."
        ) from None
    except expat.ExpatError as exc:
        raise _client_fault(_expat_message(exc)) from None


def _expat_message(exc: expat.ExpatError) -> str:
    if exc.code == expat.errors.codes[expat.errors.XML_ERROR_NO_ELEMENTS]:
        return "Premature end of file."
    return f"Unable to parse the request: {exc}"


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _string_child(login: ET.Element, name: str) -> str | None:
    for child in login:
        ns, local = _split(child.tag)
        if local == name and ns in (PARTNER_NS, ""):
            if len(child):
                raise _client_fault(f"Unexpected element {child[0].tag} during simple type deserialization")
            return child.text or ""
    return None


def parse_login_request(body: bytes) -> tuple[str, str]:
    """Return ``(username, password)`` from a partner ``login`` envelope, or raise :class:`SoapFault`.

    Prefixes are free (``soapenv:``, ``env:``, ``s:``, a default namespace); values may be CDATA or
    entity-escaped; a ``Header`` (``CallOptions``, ``LoginScopeHeader``) is ignored. Values are
    returned exactly as sent (no trimming): the password includes any appended security token.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise _client_fault(f"Request body exceeds {MAX_REQUEST_BYTES} bytes.")
    if not body.strip():
        raise _client_fault("Premature end of file.")
    _refuse_declarations(body)
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:  # pragma: no cover - expat already accepted it
        raise _client_fault(f"Unable to parse the request: {exc}") from None

    ns, local = _split(root.tag)
    if local != "Envelope" or ns not in (ENVELOPE_NS, SOAP12_ENVELOPE_NS):
        raise _client_fault(f"Expected a SOAP 1.1 Envelope ({{{ENVELOPE_NS}}}Envelope), found {root.tag}")
    if ns == SOAP12_ENVELOPE_NS:
        raise SoapFault(
            CLIENT_EXCEPTION_CODE,
            "Transport level information does not match with SOAP Message namespace URI",
            fault_code="soapenv:VersionMismatch",
        )

    body_el = root.find(f"{{{ENVELOPE_NS}}}Body")
    if body_el is None:
        raise _client_fault("Missing SOAP Body element in the Envelope.")
    operations = list(body_el)
    if not operations:
        raise _client_fault("The SOAP Body is empty; expected a login request.")
    op_ns, op = _split(operations[0].tag)
    if op_ns != PARTNER_NS:
        raise _client_fault(
            f"No operation available for request {{{op_ns}}}{op}, please check the WSDL for the service."
        )
    if op != "login":
        raise SoapFault(
            "INVALID_OPERATION",
            "Interlink implements only login() on the partner SOAP API; use the REST API",
        )

    username = _string_child(operations[0], "username")
    password = _string_child(operations[0], "password")
    if username is None or password is None:
        raise invalid_login()
    return username, password


# -- responses -----------------------------------------------------------------------------------------------


def _text(value: str) -> str:
    return _escape_text(_INVALID_XML_CHARS.sub("\ufffd", value))


def _element(name: str, value: str | bool | int | None) -> str:
    if value is None:
        return f'<{name} xsi:nil="true"/>'
    if isinstance(value, bool):
        return f"<{name}>{'true' if value else 'false'}</{name}>"
    return f"<{name}>{_text(str(value))}</{name}>"


def soap_server_urls(instance_url: str, version: str, org_id: str) -> tuple[str, str]:
    """``(serverUrl, metadataServerUrl)`` the way the platform builds them (15-character org id).

    ``instance_url`` is the bare ``scheme://host[:port]`` (no ``-api``, port 443 dropped; gotcha 2):
    simple-salesforce keeps only the host part of ``serverUrl``.
    """
    base = instance_url.rstrip("/")
    org = org_id[:15]
    return f"{base}/services/Soap/u/{version}/{org}", f"{base}/services/Soap/m/{version}/{org}"


def login_response(
    *,
    server_url: str,
    metadata_server_url: str,
    session_id: str,
    user_id: str,
    org_id: str,
    org_name: str,
    username: str,
    user_full_name: str,
    user_email: str,
    profile_id: str | None,
    session_seconds_valid: int,
    sandbox: bool = False,
    role_id: str | None = None,
    user_language: str = "en_US",
    user_locale: str = "en_US",
    user_time_zone: str = "America/Los_Angeles",
    user_type: str = "Standard",
    currency_iso_code: str = "USD",
    currency_locale: str = "en_US",
    currency_symbol: str = "$",
    has_person_accounts: bool = False,
    attachment_size_limit: int = 5_242_880,
) -> bytes:
    """The ``loginResponse`` envelope, byte for byte in the platform's shape (see module docstring).

    A single-currency org is modelled: ``organizationMultiCurrency`` false and
    ``userDefaultCurrencyIsoCode`` nil, as the platform sends for such orgs.
    """
    user_info = "".join(
        _element(name, value)
        for name, value in (
            ("accessibilityMode", False),
            ("chatterExternal", False),
            ("currencySymbol", currency_symbol),
            ("orgAttachmentFileSizeLimit", attachment_size_limit),
            ("orgDefaultCurrencyIsoCode", currency_iso_code),
            ("orgDefaultCurrencyLocale", currency_locale),
            ("orgDisallowHtmlAttachments", False),
            ("orgHasPersonAccounts", has_person_accounts),
            ("organizationId", org_id),
            ("organizationMultiCurrency", False),
            ("organizationName", org_name),
            ("profileId", profile_id),
            ("roleId", role_id),
            ("sessionSecondsValid", int(session_seconds_valid)),
            ("userDefaultCurrencyIsoCode", None),
            ("userEmail", user_email),
            ("userFullName", user_full_name),
            ("userId", user_id),
            ("userLanguage", user_language),
            ("userLocale", user_locale),
            ("userName", username),
            ("userTimeZone", user_time_zone),
            ("userType", user_type),
            ("userUiSkin", "Theme3"),
        )
    )
    result = (
        _element("metadataServerUrl", metadata_server_url)
        + _element("passwordExpired", False)
        + _element("sandbox", sandbox)
        + _element("serverUrl", server_url)
        + _element("sessionId", session_id)
        + _element("userId", user_id)
        + f"<userInfo>{user_info}</userInfo>"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{ENVELOPE_NS}" xmlns="{PARTNER_NS}" xmlns:xsi="{XSI_NS}">'
        f"<soapenv:Body><loginResponse><result>{result}</result></loginResponse></soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


def fault_response(fault: SoapFault) -> bytes:
    """The fault envelope (send with HTTP :attr:`SoapFault.http_status`)."""
    detail = ""
    if fault.has_detail:
        kind = f"sf:{fault.detail_type}"
        detail = (
            f'<detail><{kind} xsi:type="{kind}">'
            f"<sf:exceptionCode>{_text(fault.exception_code)}</sf:exceptionCode>"
            f"<sf:exceptionMessage>{_text(fault.message)}</sf:exceptionMessage>"
            f"</{kind}></detail>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{ENVELOPE_NS}" xmlns:sf="{FAULT_NS}" xmlns:xsi="{XSI_NS}">'
        "<soapenv:Body><soapenv:Fault>"
        f"<faultcode>{_text(fault.fault_code)}</faultcode>"
        f"<faultstring>{_text(fault.fault_string)}</faultstring>"
        f"{detail}"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    ).encode()
