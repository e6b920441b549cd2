"""Relative date literals (``TODAY``, ``LAST_N_DAYS:30``, ``THIS_FISCAL_QUARTER`` ...) as date ranges.

Every literal is a half-open range ``[start, end)`` of dates relative to ``today`` (the current UTC date:
Interlink users live in UTC until user time zones exist). The platform's documented ranges:

- ``YESTERDAY`` / ``TODAY`` / ``TOMORROW``: one day.
- ``LAST_WEEK`` / ``THIS_WEEK`` / ``NEXT_WEEK``: seven days from the first day of the week (Sunday, the
  en_US locale's first day of the week).
- ``LAST_MONTH`` / ``THIS_MONTH`` / ``NEXT_MONTH``, ``..._QUARTER``, ``..._YEAR``: calendar periods.
- ``LAST_90_DAYS``: today and the 90 days before it (91 days); ``NEXT_90_DAYS``: the 90 days after today.
- ``LAST_N_DAYS:n``: today and the n days before it; ``NEXT_N_DAYS:n``: the n days after today (not today);
  ``N_DAYS_AGO:n``: the one day n days before today.
- ``LAST_N_WEEKS:n`` / ``LAST_N_MONTHS:n`` / ``LAST_N_QUARTERS:n`` / ``LAST_N_YEARS:n``: the n whole periods
  before the current one (the current period is not included); ``NEXT_N_...:n``: the n whole periods after the
  current one; ``N_..._AGO:n``: the one whole period n periods before the current one.
- ``..._FISCAL_QUARTER`` / ``..._FISCAL_YEAR`` and their n-forms: as the calendar forms, with quarters and years
  starting at the fiscal year's first month (January unless configured). A fiscal year is named after the
  calendar year it ends in, as the platform's standard fiscal years are.

A comparison ``field op LITERAL`` means: ``=`` within the range, ``!=`` outside it, ``<`` before its start,
``<=`` before its end, ``>`` at or after its end, ``>=`` at or after its start.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from interlink.errors import MalformedQueryError
from interlink.soql.ast import DateLiteral

DateRange = tuple[date, date]

_N_FORM = re.compile(r"^(LAST_N|NEXT_N|N)_(DAYS|WEEKS|MONTHS|QUARTERS|YEARS|FISCAL_QUARTERS|FISCAL_YEARS)(_AGO)?$")
_PERIOD_FORM = re.compile(r"^(LAST|THIS|NEXT)_(WEEK|MONTH|QUARTER|YEAR|FISCAL_QUARTER|FISCAL_YEAR)$")


class UnknownDateLiteral(ValueError):
    """The name is not a date literal, or it needs (or must not have) an ``:n`` argument."""


def today_utc() -> date:
    return datetime.now(UTC).date()


def _add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def _period_start(today: date, unit: str, fiscal_start_month: int) -> tuple[date, int]:
    """(start of the current period, its length in months; 0 for weeks in days)."""
    if unit == "WEEK":
        # Python: Monday=0 .. Sunday=6; weeks start on Sunday.
        return today - timedelta(days=(today.weekday() + 1) % 7), 0
    if unit == "MONTH":
        return today.replace(day=1), 1
    if unit in ("QUARTER", "YEAR"):
        length = 3 if unit == "QUARTER" else 12
        month_index = today.month - 1
        return date(today.year, month_index - month_index % length + 1, 1), length
    # Fiscal periods: count months from the fiscal year's first month.
    length = 3 if unit == "FISCAL_QUARTER" else 12
    offset = (today.month - fiscal_start_month) % 12
    start_of_fy = _add_months(today.replace(day=1), -offset)
    return _add_months(start_of_fy, (offset // length) * length), length


def _shift(start: date, length_months: int, periods: int) -> date:
    if length_months == 0:
        return start + timedelta(days=7 * periods)
    return _add_months(start, length_months * periods)


def resolve(literal: DateLiteral, today: date, *, fiscal_start_month: int = 1) -> DateRange:
    """The half-open date range ``[start, end)`` that ``literal`` covers when the current date is ``today``.

    Raises :class:`UnknownDateLiteral` for an unknown name or a missing/unexpected ``:n``, and
    MALFORMED_QUERY when ``:n`` reaches outside the years 1..9999.
    """
    try:
        return _resolve(literal, today, fiscal_start_month)
    except UnknownDateLiteral:
        raise
    except (OverflowError, ValueError):
        raise MalformedQueryError(f"Date literal {literal.name}:{literal.n} is out of the supported range "
                                  "(years 1 to 9999)", []) from None


def _resolve(literal: DateLiteral, today: date, fiscal_start_month: int) -> DateRange:
    name = literal.name.upper()
    n = literal.n
    simple = {"YESTERDAY": -1, "TODAY": 0, "TOMORROW": 1}
    if name in simple:
        _no_argument(literal)
        day = today + timedelta(days=simple[name])
        return day, day + timedelta(days=1)
    if name == "LAST_90_DAYS":
        _no_argument(literal)
        return today - timedelta(days=90), today + timedelta(days=1)
    if name == "NEXT_90_DAYS":
        _no_argument(literal)
        return today + timedelta(days=1), today + timedelta(days=91)
    match = _PERIOD_FORM.match(name)
    if match:
        _no_argument(literal)
        which, unit = match.groups()
        start, length = _period_start(today, unit, fiscal_start_month)
        shift = {"LAST": -1, "THIS": 0, "NEXT": 1}[which]
        start = _shift(start, length, shift)
        return start, _shift(start, length, 1)
    match = _N_FORM.match(name)
    if match:
        kind, units, ago = match.groups()
        if (kind == "N") != bool(ago):
            raise UnknownDateLiteral(name)
        if n is None or n < 0:
            raise UnknownDateLiteral(name)
        if units == "DAYS":
            if kind == "LAST_N":
                return today - timedelta(days=n), today + timedelta(days=1)
            if kind == "NEXT_N":
                return today + timedelta(days=1), today + timedelta(days=n + 1)
            day = today - timedelta(days=n)
            return day, day + timedelta(days=1)
        unit = units[:-1]  # WEEKS -> WEEK, FISCAL_QUARTERS -> FISCAL_QUARTER
        start, length = _period_start(today, unit, fiscal_start_month)
        if kind == "LAST_N":
            return _shift(start, length, -n), start
        if kind == "NEXT_N":
            return _shift(start, length, 1), _shift(start, length, n + 1)
        first = _shift(start, length, -n)
        return first, _shift(first, length, 1)
    raise UnknownDateLiteral(name)


def _no_argument(literal: DateLiteral) -> None:
    if literal.n is not None:
        raise UnknownDateLiteral(literal.name)


def is_date_literal(name: str) -> bool:
    """Whether ``name`` (with or without an ``:n``) names a date literal."""
    upper = name.upper()
    return (upper in ("YESTERDAY", "TODAY", "TOMORROW", "LAST_90_DAYS", "NEXT_90_DAYS")
            or bool(_PERIOD_FORM.match(upper)) or bool(_N_FORM.match(upper)))


def needs_argument(name: str) -> bool:
    return bool(_N_FORM.match(name.upper()))


def as_datetimes(bounds: DateRange) -> tuple[datetime, datetime]:
    """The range as naive UTC datetimes (midnight to midnight), for datetime fields."""
    start, end = bounds
    return datetime(start.year, start.month, start.day), datetime(end.year, end.month, end.day)


__all__ = ["DateRange", "UnknownDateLiteral", "as_datetimes", "is_date_literal", "needs_argument", "resolve",
           "today_utc"]
