"""Partner SOAP ``login()``: request parsing, the response shape real clients read, faults.

The response is checked the three ways clients read it: simple-salesforce (minidom by qualified tag
name, through its own ``soap_login`` over a fake transport), and the Pub/Sub Python sample
(ElementTree by position).
"""

from __future__ import annotations

import xml.dom.minidom
import xml.etree.ElementTree as ET
from html import escape

import pytest
import requests
from requests.adapters import BaseAdapter
from simple_salesforce.exceptions import SalesforceAuthenticationFailed
from simple_salesforce.login import soap_login

from interlink.api.soap import (
    CONTENT_TYPE,
    ENVELOPE_NS,
    PARTNER_NS,
    SoapFault,
    fault_response,
    invalid_login,
    login_disabled_fault,
    login_response,
    login_unavailable,
    parse_login_request,
    soap_server_urls,
)

ORG_ID = "00D000000000001AAA"
USER_ID = "005000000000001AAA"
PROFILE_ID = "00e000000000001AAA"
SESSION = "00D000000000001!AQ0AQFakeSessionToken.value_123"
P = f"{{{PARTNER_NS}}}"


def _simple_salesforce_token_body(username: str, password: str, token: str) -> bytes:
    """simple-salesforce 1.12.x, security-token branch of ``SalesforceLogin`` (verbatim shape)."""
    username, password = escape(username), escape(password)
    return f"""<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope
        xmlns:xsd="http://www.w3.org/2001/XMLSchema"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
        xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"
        xmlns:urn="urn:partner.soap.sforce.com">
    <env:Header>
        <urn:CallOptions>
            <urn:client>simple-salesforce</urn:client>
            <urn:defaultNamespace>sf</urn:defaultNamespace>
        </urn:CallOptions>
    </env:Header>
    <env:Body>
        <n1:login xmlns:n1="urn:partner.soap.sforce.com">
            <n1:username>{username}</n1:username>
            <n1:password>{password}{token}</n1:password>
        </n1:login>
    </env:Body>
</env:Envelope>""".encode()


def _simple_salesforce_org_body(username: str, password: str, org_id: str) -> bytes:
    """simple-salesforce, organizationId branch (``soapenv:`` + ``LoginScopeHeader``)."""
    username, password = escape(username), escape(password)
    return f"""<?xml version="1.0" encoding="utf-8" ?>
<soapenv:Envelope
        xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
        xmlns:urn="urn:partner.soap.sforce.com">
    <soapenv:Header>
        <urn:CallOptions>
            <urn:client>simple-salesforce</urn:client>
            <urn:defaultNamespace>sf</urn:defaultNamespace>
        </urn:CallOptions>
        <urn:LoginScopeHeader>
            <urn:organizationId>{org_id}</urn:organizationId>
        </urn:LoginScopeHeader>
    </soapenv:Header>
    <soapenv:Body>
        <urn:login>
            <urn:username>{username}</urn:username>
            <urn:password>{password}</urn:password>
        </urn:login>
    </soapenv:Body>
</soapenv:Envelope>""".encode()


def _pubsub_sample_body(username: str, password: str) -> bytes:
    """forcedotcom/pub-sub-api python/InventoryAppExample/PubSub.py ``auth()`` (CDATA, no declaration)."""
    return (
        "<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/' "
        "xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' "
        "xmlns:urn='urn:partner.soap.sforce.com'><soapenv:Body>"
        "<urn:login><urn:username><![CDATA["
        + username
        + "]]></urn:username><urn:password><![CDATA["
        + password
        + "]]></urn:password></urn:login></soapenv:Body></soapenv:Envelope>"
    ).encode()


def _response(**overrides: object) -> bytes:
    server_url, metadata_url = soap_server_urls("https://127.0.0.1:8443", "59.0", ORG_ID)
    kwargs: dict[str, object] = {
        "server_url": server_url,
        "metadata_server_url": metadata_url,
        "session_id": SESSION,
        "user_id": USER_ID,
        "org_id": ORG_ID,
        "org_name": "Interlink Local Org",
        "username": "admin@interlink.local",
        "user_full_name": "Admin User",
        "user_email": "admin@interlink.local",
        "profile_id": PROFILE_ID,
        "session_seconds_valid": 7200,
    }
    kwargs.update(overrides)
    return login_response(**kwargs)  # type: ignore[arg-type]


# -- parse_login_request -------------------------------------------------------------------------------------


def test_parses_simple_salesforce_security_token_envelope() -> None:
    body = _simple_salesforce_token_body("admin@interlink.local", "pa<ss>&'\"word", "TOKEN123")
    assert parse_login_request(body) == ("admin@interlink.local", "pa<ss>&'\"wordTOKEN123")


def test_parses_simple_salesforce_org_id_envelope_ignoring_login_scope_header() -> None:
    body = _simple_salesforce_org_body("u@example.com", "secret", ORG_ID)
    assert parse_login_request(body) == ("u@example.com", "secret")


def test_parses_pubsub_sample_cdata_envelope() -> None:
    body = _pubsub_sample_body("u@example.com", "p&ss<w>rd ")
    assert parse_login_request(body) == ("u@example.com", "p&ss<w>rd ")


def test_parses_any_prefix_and_default_namespace() -> None:
    body = (
        f'<s:Envelope xmlns:s="{ENVELOPE_NS}"><s:Header/><s:Body>'
        f'<login xmlns="{PARTNER_NS}"><username>a@b.c</username><password>pw</password></login>'
        "</s:Body></s:Envelope>"
    ).encode()
    assert parse_login_request(body) == ("a@b.c", "pw")


def test_parses_utf8_values() -> None:
    body = _pubsub_sample_body("jürgen@example.com", "pässwörd€")
    assert parse_login_request(body) == ("jürgen@example.com", "pässwörd€")


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<soapenv:Body><urn:login xmlns:urn="urn:partner.soap.sforce.com">'
        b"<urn:username>&xxe;</urn:username><urn:password>x</urn:password></urn:login>"
        b"</soapenv:Body></soapenv:Envelope>",
        b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><a>&lol2;</a>',
        b"<!DOCTYPE a><a/>",
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a><a/>'.encode("utf-16"),
    ],
)
def test_refuses_doctype_and_entities(body: bytes) -> None:
    with pytest.raises(SoapFault) as info:
        parse_login_request(body)
    assert info.value.fault_code == "soapenv:Client"
    assert "DOCTYPE is disallowed" in info.value.message
    assert info.value.http_status == 500


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"", "Premature end of file."),
        (b"   ", "Premature end of file."),
        (b"<soapenv:Envelope", "Unable to parse the request"),
        (b"not xml at all", "Unable to parse the request"),
        (b"<Envelope/>", "Expected a SOAP 1.1 Envelope"),
        (f'<e:Envelope xmlns:e="{ENVELOPE_NS}"/>'.encode(), "Missing SOAP Body"),
        (f'<e:Envelope xmlns:e="{ENVELOPE_NS}"><e:Body/></e:Envelope>'.encode(), "Body is empty"),
        (
            f'<e:Envelope xmlns:e="{ENVELOPE_NS}"><e:Body><login xmlns="urn:enterprise.soap.sforce.com"/>'
            "</e:Body></e:Envelope>".encode(),
            "No operation available for request {urn:enterprise.soap.sforce.com}login",
        ),
        (
            f'<e:Envelope xmlns:e="{ENVELOPE_NS}"><e:Body><login xmlns="{PARTNER_NS}">'
            "<username><b>x</b></username><password>p</password></login></e:Body></e:Envelope>".encode(),
            "Unexpected element",
        ),
    ],
)
def test_malformed_bodies_are_client_faults(body: bytes, text: str) -> None:
    with pytest.raises(SoapFault) as info:
        parse_login_request(body)
    fault = info.value
    assert fault.fault_code == "soapenv:Client"
    assert text in fault.message
    assert not fault.has_detail
    assert fault.fault_string == fault.message


def test_soap12_envelope_is_version_mismatch() -> None:
    body = (
        '<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body>'
        f'<login xmlns="{PARTNER_NS}"><username>u</username><password>p</password></login>'
        "</e:Body></e:Envelope>"
    ).encode()
    with pytest.raises(SoapFault) as info:
        parse_login_request(body)
    assert info.value.fault_code == "soapenv:VersionMismatch"


def test_other_partner_operations_are_invalid_operation() -> None:
    body = (
        f'<soapenv:Envelope xmlns:soapenv="{ENVELOPE_NS}" xmlns:urn="{PARTNER_NS}"><soapenv:Header>'
        "<urn:SessionHeader><urn:sessionId>x</urn:sessionId></urn:SessionHeader></soapenv:Header>"
        "<soapenv:Body><urn:query><urn:queryString>SELECT Id FROM Account</urn:queryString></urn:query>"
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()
    with pytest.raises(SoapFault) as info:
        parse_login_request(body)
    fault = info.value
    assert (fault.exception_code, fault.fault_code) == ("INVALID_OPERATION", "sf:INVALID_OPERATION")
    assert "only login()" in fault.message
    assert fault.detail_type == "UnexpectedErrorFault"


@pytest.mark.parametrize("missing", ["username", "password"])
def test_missing_credentials_are_invalid_login(missing: str) -> None:
    fields = {"username": "<urn:username>u</urn:username>", "password": "<urn:password>p</urn:password>"}
    del fields[missing]
    body = (
        f'<soapenv:Envelope xmlns:soapenv="{ENVELOPE_NS}" xmlns:urn="{PARTNER_NS}"><soapenv:Body>'
        f"<urn:login>{''.join(fields.values())}</urn:login></soapenv:Body></soapenv:Envelope>"
    ).encode()
    with pytest.raises(SoapFault) as info:
        parse_login_request(body)
    assert info.value.exception_code == "INVALID_LOGIN"


def test_empty_password_element_parses_as_empty_string() -> None:
    body = _simple_salesforce_org_body("u@example.com", "", ORG_ID).replace(
        b"<urn:password></urn:password>", b"<urn:password/>"
    )
    assert parse_login_request(body) == ("u@example.com", "")


def test_oversized_body_is_refused_without_parsing() -> None:
    with pytest.raises(SoapFault) as info:
        parse_login_request(b"<a>" + b"x" * 100_000 + b"</a>")
    assert info.value.fault_code == "soapenv:Client"


# -- login_response ------------------------------------------------------------------------------------------


def test_response_read_like_simple_salesforce_minidom() -> None:
    dom = xml.dom.minidom.parseString(_response())
    assert dom.getElementsByTagName("sessionId")[0].firstChild.nodeValue == SESSION
    server_url = dom.getElementsByTagName("serverUrl")[0].firstChild.nodeValue
    assert server_url == "https://127.0.0.1:8443/services/Soap/u/59.0/00D000000000001"
    assert not dom.getElementsByTagName("soapenv:Header")


def test_response_read_by_position_like_pubsub_sample() -> None:
    raw = _response()
    # The sample decodes to str first; ElementTree must accept the encoding declaration in a str.
    root = ET.fromstring(raw.decode("utf-8"))
    result = root[0][0][0]
    assert root[0].tag == f"{{{ENVELOPE_NS}}}Body"
    assert root[0][0].tag == f"{P}loginResponse"
    assert result.tag == f"{P}result"
    assert result[3].text == "https://127.0.0.1:8443/services/Soap/u/59.0/00D000000000001"
    assert result[4].text == SESSION
    assert result[6].tag == f"{P}userInfo"
    assert result[6][8].text == ORG_ID


def test_response_child_order_matches_partner_wsdl() -> None:
    result = ET.fromstring(_response())[0][0][0]
    assert [child.tag.removeprefix(P) for child in result] == [
        "metadataServerUrl",
        "passwordExpired",
        "sandbox",
        "serverUrl",
        "sessionId",
        "userId",
        "userInfo",
    ]
    assert [child.tag.removeprefix(P) for child in result[6]] == [
        "accessibilityMode",
        "chatterExternal",
        "currencySymbol",
        "orgAttachmentFileSizeLimit",
        "orgDefaultCurrencyIsoCode",
        "orgDefaultCurrencyLocale",
        "orgDisallowHtmlAttachments",
        "orgHasPersonAccounts",
        "organizationId",
        "organizationMultiCurrency",
        "organizationName",
        "profileId",
        "roleId",
        "sessionSecondsValid",
        "userDefaultCurrencyIsoCode",
        "userEmail",
        "userFullName",
        "userId",
        "userLanguage",
        "userLocale",
        "userName",
        "userTimeZone",
        "userType",
        "userUiSkin",
    ]


def test_response_literal_prefix_and_values() -> None:
    raw = _response(sandbox=True, profile_id=None)
    assert raw.startswith(
        b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        b'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" '
        b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>'
        b"<metadataServerUrl>https://127.0.0.1:8443/services/Soap/m/59.0/00D000000000001</metadataServerUrl>"
        b"<passwordExpired>false</passwordExpired><sandbox>true</sandbox>"
    )
    assert b'<profileId xsi:nil="true"/>' in raw
    assert b'<roleId xsi:nil="true"/>' in raw
    assert b"<sessionSecondsValid>7200</sessionSecondsValid>" in raw
    info = ET.fromstring(raw)[0][0][0][6]
    nil = f"{{{'http://www.w3.org/2001/XMLSchema-instance'}}}nil"
    assert info.find(f"{P}roleId").get(nil) == "true"  # type: ignore[union-attr]


def test_response_escapes_text() -> None:
    raw = _response(org_name='Smith & Sons <Ltd> "q" ]]>', user_full_name="Zoë\x01 O'Neil")
    info = ET.fromstring(raw)[0][0][0][6]
    assert info.find(f"{P}organizationName").text == 'Smith & Sons <Ltd> "q" ]]>'  # type: ignore[union-attr]
    assert info.find(f"{P}userFullName").text == "Zoë\ufffd O'Neil"  # type: ignore[union-attr]
    xml.dom.minidom.parseString(raw)


# -- faults --------------------------------------------------------------------------------------------------


def test_invalid_login_fault_exact_bytes() -> None:
    assert fault_response(invalid_login()) == (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        b'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        b"<soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode>"
        b"<faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out."
        b"</faultstring>"
        b'<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>'
        b"<sf:exceptionMessage>Invalid username, password, security token; or user locked out."
        b"</sf:exceptionMessage>"
        b"</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )


def test_non_login_fault_uses_unexpected_error_fault_and_parses() -> None:
    raw = fault_response(SoapFault("INVALID_OPERATION", "a < b & c"))
    assert b"sf:exceptionCode" in raw and b"sf:exceptionMessage" in raw
    dom = xml.dom.minidom.parseString(raw)
    assert dom.getElementsByTagName("sf:exceptionCode")[0].firstChild.nodeValue == "INVALID_OPERATION"
    assert dom.getElementsByTagName("sf:exceptionMessage")[0].firstChild.nodeValue == "a < b & c"
    assert dom.getElementsByTagName("sf:UnexpectedErrorFault")[0].getAttribute("xsi:type") == (
        "sf:UnexpectedErrorFault"
    )
    assert dom.getElementsByTagName("faultstring")[0].firstChild.nodeValue == "INVALID_OPERATION: a < b & c"


def test_client_fault_has_no_detail() -> None:
    with pytest.raises(SoapFault) as info:
        parse_login_request(b"")
    raw = fault_response(info.value)
    root = ET.fromstring(raw)
    fault = root[0][0]
    assert [child.tag for child in fault] == ["faultcode", "faultstring"]
    assert fault[0].text == "soapenv:Client"
    assert fault[1].text == "Premature end of file."


@pytest.mark.parametrize(
    ("version", "shown"), [("65.0", "65.0"), ("66.0", "66.0"), ("67", "67.0"), ("65.0/", "65.0")]
)
def test_login_unavailable_from_v65(version: str, shown: str) -> None:
    fault = login_unavailable(version)
    assert fault is not None
    assert fault.exception_code == "INVALID_OPERATION"
    assert fault.fault_code == "sf:INVALID_OPERATION"
    assert f"SOAP Login operation is not available in the API version specified ({shown})" in fault.message
    assert fault.fault_string.startswith("INVALID_OPERATION: The SOAP Login operation")


@pytest.mark.parametrize("version", ["31.0", "43.0", "57.0", "64.0", "59"])
def test_login_available_before_v65(version: str) -> None:
    assert login_unavailable(version) is None


@pytest.mark.parametrize("version", ["v59.0", "abc", "", "59.0.1"])
def test_login_unavailable_for_malformed_versions(version: str) -> None:
    fault = login_unavailable(version)
    assert fault is not None and fault.exception_code == "UNSUPPORTED_API_VERSION"


def test_login_disabled_fault() -> None:
    fault = login_disabled_fault()
    assert fault.exception_code == "INVALID_OPERATION"
    assert "SOAP API login() is disabled" in fault.message
    assert "OAuth 2.0" in fault.message


# -- simple-salesforce's own soap_login over a fake transport -----------------------------------------------


class _CannedAdapter(BaseAdapter):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__()
        self.status = status
        self.body = body
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        self.requests.append(request)
        response = requests.Response()
        response.status_code = self.status
        response._content = self.body
        response.headers["Content-Type"] = CONTENT_TYPE
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def _session(adapter: _CannedAdapter) -> requests.Session:
    session = requests.Session()
    session.mount("https://", adapter)
    return session


def test_simple_salesforce_soap_login_success() -> None:
    adapter = _CannedAdapter(200, _response())
    body = _simple_salesforce_token_body("admin@interlink.local", "pw", "TOK").decode()
    session_id, instance = soap_login(
        "https://127.0.0.1:8443/services/Soap/u/59.0",
        body,
        {"content-type": "text/xml", "charset": "UTF-8", "SOAPAction": "login"},
        None,
        _session(adapter),
    )
    assert (session_id, instance) == (SESSION, "127.0.0.1:8443")
    sent = adapter.requests[0].body
    assert parse_login_request(sent if isinstance(sent, bytes) else str(sent).encode()) == (
        "admin@interlink.local",
        "pwTOK",
    )


def test_simple_salesforce_soap_login_invalid_login() -> None:
    adapter = _CannedAdapter(invalid_login().http_status, fault_response(invalid_login()))
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        soap_login("https://127.0.0.1:8443/services/Soap/u/59.0", "<x/>", None, None, _session(adapter))
    assert info.value.code == "INVALID_LOGIN"
    assert info.value.content == b"Invalid username, password, security token; or user locked out."


def test_simple_salesforce_soap_login_v65_fault() -> None:
    fault = login_unavailable("65.0")
    assert fault is not None
    adapter = _CannedAdapter(fault.http_status, fault_response(fault))
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        soap_login("https://127.0.0.1:8443/services/Soap/u/65.0", "<x/>", None, None, _session(adapter))
    assert info.value.code == "INVALID_OPERATION"
    assert b"(65.0)" in info.value.content
