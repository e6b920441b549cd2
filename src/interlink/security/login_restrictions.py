"""Profile login restrictions: login IP ranges and login hours, and the client address they are checked against.

A profile may declare, in ``metadata/profiles/<Name>.yaml``::

    loginIpRanges:
      - {start: 10.0.0.0, end: 10.0.0.255, description: Office}
      - {start: 2001:db8::, end: 2001:db8::ffff}
    loginHours:                      # in the org's time zone (Organization.TimeZoneSidKey), UTC when unknown
      monday: {start: "08:00", end: "18:00"}
      tuesday: {start: "08:00", end: "24:00"}

As on the platform (Setup > Profiles > Login IP Ranges / Login Hours), a user of a profile with ranges can log in
only from an address inside one of them, and a user of a profile with login hours only during them. With login
hours a day the file does not list allows no login (write ``00:00``-``24:00`` for a whole day; leave ``loginHours``
out for no restriction); ``start`` equal to ``end`` closes the day too. Both ends of a range must be of the same
family (IPv4 or IPv6), the start not above the end.

The client address is the socket peer. ``X-Forwarded-For`` counts only when the peer is one of the
``trusted_proxies`` (addresses or networks): then the address is the right-most entry of the header that is not a
trusted proxy itself, so a client cannot choose its address by sending the header.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from interlink.errors import ConfigurationError, MetadataError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK_RE = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


@dataclass(frozen=True)
class IpRange:
    """One allowed range of a profile, both ends included."""

    start: Address
    end: Address
    description: str = ""

    def __contains__(self, address: object) -> bool:
        return (isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)
                and address.version == self.start.version and self.start <= address <= self.end)

    def as_json(self) -> dict[str, str]:
        return {"start": str(self.start), "end": str(self.end), "description": self.description}


@dataclass(frozen=True)
class LoginHours:
    """The hours of each weekday (0 = Monday) a profile's users may log in: (start, end) minutes after midnight."""

    days: Mapping[int, tuple[int, int]]

    def allows(self, moment: datetime) -> bool:
        """Whether ``moment`` (aware, in the org's time zone) falls inside the day's hours."""
        hours = self.days.get(moment.weekday())
        if hours is None:
            return False
        minute = moment.hour * 60 + moment.minute
        return hours[0] <= minute < hours[1]

    def as_json(self) -> dict[str, dict[str, str]]:
        return {DAYS[day]: {"start": _clock(start), "end": _clock(end)} for day, (start, end) in self.days.items()}


@dataclass(frozen=True)
class ProfileRestrictions:
    """What a profile restricts: no ranges and no hours restrict nothing."""

    ip_ranges: tuple[IpRange, ...] = ()
    login_hours: LoginHours | None = None

    def ip_allowed(self, source_ip: str | None) -> bool:
        """Whether a login from ``source_ip`` passes the ranges (an unknown or unparsable address does not)."""
        if not self.ip_ranges:
            return True
        address = parse_address(source_ip)
        return address is not None and any(address in r for r in self.ip_ranges)

    def hours_allow(self, moment: datetime) -> bool:
        return self.login_hours is None or self.login_hours.allows(moment)


NO_RESTRICTIONS = ProfileRestrictions()


# -- parsing -----------------------------------------------------------------------------------------------------

def parse_address(value: str | None) -> Address | None:
    """An IP address, IPv4-mapped IPv6 addresses as IPv4; None when ``value`` is not one."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_ip_ranges(value: Any, where: str) -> tuple[IpRange, ...]:
    """``loginIpRanges`` of a profile file: a list of ``{start, end, description}``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MetadataError(f"{where}: loginIpRanges must be a list of {{start, end, description}}")
    ranges: list[IpRange] = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping) or not set(item) <= {"start", "end", "description"} or "start" not in item:
            raise MetadataError(f"{where}: loginIpRanges[{index}] must be {{start, end, description}}")
        start = parse_address(str(item["start"]))
        end = parse_address(str(item.get("end", item["start"])))
        if start is None or end is None:
            raise MetadataError(f"{where}: loginIpRanges[{index}]: {item.get('start')!r} or {item.get('end')!r} "
                                "is not an IP address")
        if start.version != end.version or start > end:
            raise MetadataError(f"{where}: loginIpRanges[{index}]: the start and end must both be IPv4 or both IPv6, "
                                "and the start not above the end")
        ranges.append(IpRange(start, end, str(item.get("description") or "")))
    return tuple(ranges)


def _minutes(value: Any, where: str) -> int:
    match = _CLOCK_RE.match(str(value).strip())
    minutes = int(match.group(1)) * 60 + int(match.group(2)) if match else -1
    if not match or minutes > 24 * 60:
        raise MetadataError(f"{where}: {value!r} is not a time of day (HH:MM, 00:00 to 24:00)")
    return minutes


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_login_hours(value: Any, where: str) -> LoginHours | None:
    """``loginHours`` of a profile file: ``{monday: {start: "08:00", end: "18:00"}, ...}``."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise MetadataError(f"{where}: loginHours must map days (monday ... sunday) to {{start, end}}")
    days: dict[int, tuple[int, int]] = {}
    for name, hours in value.items():
        day = str(name).lower()
        if day not in DAYS:
            raise MetadataError(f"{where}: loginHours: unknown day {name!r} (monday ... sunday)")
        if not isinstance(hours, Mapping) or set(hours) != {"start", "end"}:
            raise MetadataError(f"{where}: loginHours.{day} must be {{start: \"HH:MM\", end: \"HH:MM\"}}")
        start, end = _minutes(hours["start"], f"{where}: loginHours.{day}.start"), \
            _minutes(hours["end"], f"{where}: loginHours.{day}.end")
        if start > end:
            raise MetadataError(f"{where}: loginHours.{day}: the end is before the start")
        days[DAYS.index(day)] = (start, end)
    return LoginHours(days)


def restrictions_from_json(ip_ranges: str | None, login_hours: str | None) -> ProfileRestrictions:
    """What :func:`restrictions_as_json` stored (checked when the profile was deployed)."""
    ranges = parse_ip_ranges(json.loads(ip_ranges), "stored ranges") if ip_ranges else ()
    hours = parse_login_hours(json.loads(login_hours), "stored hours") if login_hours else None
    return ProfileRestrictions(ranges, hours)


def restrictions_as_json(restrictions: ProfileRestrictions) -> tuple[str | None, str | None]:
    ranges = json.dumps([r.as_json() for r in restrictions.ip_ranges]) if restrictions.ip_ranges else None
    hours = json.dumps(restrictions.login_hours.as_json()) if restrictions.login_hours is not None else None
    return ranges, hours


def org_zone(name: str | None) -> ZoneInfo:
    """The org's time zone (a TimeZoneSidKey such as ``Europe/Paris`` or ``GMT``); UTC when unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


# -- the client address ------------------------------------------------------------------------------------------

def parse_networks(value: str | Iterable[str]) -> tuple[Network, ...]:
    """``trusted_proxies``: addresses or networks, comma-separated (a string) or a list."""
    items = value.split(",") if isinstance(value, str) else list(value)
    networks: list[Network] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigurationError(f"trusted_proxies: {item!r} is not an IP address or network") from None
    return tuple(networks)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str | None:
    """The client's address: the socket ``peer``, or behind trusted proxies the ``X-Forwarded-For`` hop before them."""
    if not trusted or peer is None:
        return peer

    def is_trusted(value: str) -> bool:
        address = parse_address(value)
        return address is not None and any(address in network for network in trusted)

    if not is_trusted(peer):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop if parse_address(hop) is not None else peer
    return hops[0] if hops else peer


__all__ = [
    "DAYS",
    "NO_RESTRICTIONS",
    "IpRange",
    "LoginHours",
    "ProfileRestrictions",
    "client_address",
    "org_zone",
    "parse_address",
    "parse_ip_ranges",
    "parse_login_hours",
    "parse_networks",
    "restrictions_as_json",
    "restrictions_from_json",
]
