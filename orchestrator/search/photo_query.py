"""``taken_at`` in query strings, rewritten into exact instants for both backends (pure).

Users write dates as people do: ``taken_at:2019``, ``taken_at:>=2019-06``,
``taken_at:[2019-06-01 TO 2019-08-31]``. tantivy's parser takes only full RFC 3339 times,
and Elasticsearch fills a partial upper bound with the *first* day or month
(``<=2019`` ends on 2019-01-01), so each clause is rewritten, for both, into a half-open
range of UTC instants that covers every named period whole: ``taken_at:2019`` becomes
``taken_at:[2019-01-01T00:00:00Z TO 2020-01-01T00:00:00Z}``. Bounds are clamped to the
instants a stored date can have, so no number beyond them reaches tantivy.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from orchestrator.errors import InvalidQuery
from orchestrator.search.base import SearchOptions
from orchestrator.search.limits import shown
from orchestrator.search.photo_fields import TAKEN_AT_MAX, TAKEN_AT_MIN

FIELD = "taken_at"
_PREFIX = f"{FIELD}:"
#: What may come right before a field name in a query string.
_BEFORE_FIELD = " \t\r\n(+-!"
DATE_HELP = (
    "write a date as 2019, 2019-07, 2019-07-14, 2019-07-14T10:30 or "
    "2019-07-14T10:30:00+02:00, or relative to now as now-1y (y, M, w, d, h, m, s)"
)
_DATE = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{1,2})(?:-(?P<day>\d{1,2})"
    r"(?:T(?P<hour>\d{2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?)?"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?)?)?)?"
)
_NOW = re.compile(r"now(?:(?P<sign>[+-])(?P<amount>\d{1,4})(?P<unit>[yMwdhms]))?")
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


class _Refused(ValueError):
    """A clause that cannot be rewritten; the message says why, without the query."""


def rewrite_dates(query: str) -> str:
    """``query`` with every ``taken_at:`` clause outside phrases as a range of instants.

    Raises:
        InvalidQuery: a clause holds something that is not a date; the message quotes the
            query and says how dates are written.
    """
    if _PREFIX not in query:
        return query
    out: list[str] = []
    i = 0
    while i < len(query):
        char = query[i]
        if char == "\\":
            out.append(query[i : i + 2])
            i += 2
        elif char == '"':
            end = _phrase_end(query, i)
            out.append(query[i:end])
            i = end
        elif query.startswith(_PREFIX, i) and (i == 0 or query[i - 1] in _BEFORE_FIELD):
            try:
                clause, i = _clause(query, i + len(_PREFIX))
            except _Refused as e:
                raise InvalidQuery(f"query {shown(query)}: {e}") from None
            out.append(_PREFIX + clause)
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _phrase_end(query: str, start: int) -> int:
    i = start + 1
    while i < len(query):
        if query[i] == "\\":
            i += 2
            continue
        if query[i] == '"':
            return i + 1
        i += 1
    return len(query)


def _clause(query: str, start: int) -> tuple[str, int]:
    """The rewritten value of the clause whose value starts at ``start``, and its end."""
    rest = query[start:]
    if rest[:1] in ("[", "{"):
        close = min((p for p in (rest.find("]"), rest.find("}")) if p > 0), default=-1)
        if close < 0:
            raise _Refused(f"{FIELD}:{rest[:40]} has no closing ] or }}")
        return _range(rest[: close + 1]), start + close + 1
    if rest[:1] == "(":
        raise _Refused(
            f"{FIELD}:(...) groups are not supported; "
            f"write {FIELD}:2019 OR {FIELD}:2020, or a range {FIELD}:[2019 TO 2020]"
        )
    operator = next((op for op in (">=", "<=", ">", "<") if rest.startswith(op)), "")
    value, end = _token(query, start + len(operator))
    if not value:
        raise _Refused(f"{FIELD}:{operator} needs a date: {DATE_HELP}")
    if value == "*" and not operator:
        return "*", end  # any date at all: Elasticsearch and tantivy both read it so
    first, after = _period(value)
    bounds = {
        "": (first, after),
        ">=": (first, None),
        ">": (after, None),
        "<": (None, first),
        "<=": (None, after),
    }[operator]
    return _half_open(*bounds), end


def _token(query: str, start: int) -> tuple[str, int]:
    """A value up to whitespace or a closing parenthesis, or a quoted one, unescaped."""
    if query[start : start + 1] == '"':
        end = _phrase_end(query, start)
        return query[start + 1 : end - 1].strip(), end
    chars: list[str] = []
    i = start
    while i < len(query) and not query[i].isspace() and query[i] != ")":
        if query[i] == "\\" and i + 1 < len(query):
            i += 1
        chars.append(query[i])
        i += 1
    return "".join(chars), i


def _range(text: str) -> str:
    parts = text[1:-1].replace("\\", "").split()
    if len(parts) != 3 or parts[1] != "TO":
        raise _Refused(f"{FIELD}:{text} is not a range: write {FIELD}:[2019-06-01 TO 2019-08-31]")
    low = None if parts[0] == "*" else _period(parts[0])
    high = None if parts[2] == "*" else _period(parts[2])
    # [ includes the lower period whole, { starts after it; ] includes the upper one, } stops
    # before it.
    start = None if low is None else low[0] if text[0] == "[" else low[1]
    stop = None if high is None else high[1] if text[-1] == "]" else high[0]
    return _half_open(start, stop)


def _half_open(start: datetime | None, stop: datetime | None) -> str:
    if start is not None and start <= TAKEN_AT_MIN:
        start = None  # no stored date is earlier: an open end says the same
    if stop is not None and stop >= TAKEN_AT_MAX:
        stop = None
    if start is None and stop is None:
        return "*"
    low = "*" if start is None else _instant(min(start, TAKEN_AT_MAX))
    if stop is None:
        return f"[{low} TO *]"
    return f"[{low} TO {_instant(max(stop, TAKEN_AT_MIN))}}}"


def _instant(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text.replace(".000000", "").replace("+00:00", "Z")


def _period(value: str) -> tuple[datetime, datetime]:
    """The first instant of the period ``value`` names, and the first one after it."""
    now = _NOW.fullmatch(value)
    if now is not None:
        moment = _shifted(datetime.now(UTC).replace(microsecond=0), now)
        moment = min(max(moment, TAKEN_AT_MIN), TAKEN_AT_MAX)
        return moment, moment + timedelta(seconds=1)
    match = _DATE.fullmatch(value)
    if match is None:
        raise _Refused(f"{FIELD}: {value[:40]!r} is not a date: {DATE_HELP}")
    parts = {k: int(v) for k, v in match.groupdict().items() if v and k not in ("zone", "fraction")}
    try:
        first = datetime(
            parts["year"],
            parts.get("month", 1),
            parts.get("day", 1),
            parts.get("hour", 0),
            parts.get("minute", 0),
            parts.get("second", 0),
            int((match["fraction"] or "0")[:6].ljust(6, "0")),
            tzinfo=_zone(match["zone"]),
        )
    except ValueError as e:
        raise _Refused(f"{FIELD}: {value[:40]!r} is not a date ({e})") from None
    # A period wholly before or after every date a photo can have is an empty one at that
    # edge; arithmetic near year 1 or 9999 would overflow.
    if first.year < TAKEN_AT_MIN.year:
        return TAKEN_AT_MIN, TAKEN_AT_MIN
    if first.year >= TAKEN_AT_MAX.year:
        return TAKEN_AT_MAX, TAKEN_AT_MAX
    return first.astimezone(UTC), _after(first, match).astimezone(UTC)


def _zone(text: str | None) -> tzinfo:
    if text is None or text == "Z":
        return UTC  # no offset: UTC, as Elasticsearch reads a date without one
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {text} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _after(first: datetime, match: re.Match[str]) -> datetime:
    """The first instant after the period that ``first`` starts, at the precision written."""
    if match["fraction"]:
        digits = min(len(match["fraction"]), 6)
        return first + timedelta(microseconds=10 ** (6 - digits))
    for unit, step in (("second", 1), ("minute", 60), ("hour", 3600)):
        if match[unit]:
            return first + timedelta(seconds=step)
    if match["day"]:
        return first + timedelta(days=1)
    if match["month"]:
        return _add_months(first, 1)
    return first.replace(year=first.year + 1)


def _shifted(moment: datetime, match: re.Match[str]) -> datetime:
    if not match["unit"]:
        return moment
    amount = int(match["amount"]) * (-1 if match["sign"] == "-" else 1)
    unit = match["unit"]
    if unit in ("y", "M"):
        return _add_months(moment, amount * (12 if unit == "y" else 1))
    return moment + timedelta(seconds=amount * _UNIT_SECONDS[unit])


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    # `now-9999y` is simply long ago: clamped later to the oldest date a photo can have.
    year = min(max(year, 1), 9998)
    # The 31st of a shorter month is its last day, as in Elasticsearch's date math.
    for day in range(moment.day, 27, -1):
        try:
            return moment.replace(year=year, month=month + 1, day=day)
        except ValueError:
            continue
    return moment.replace(year=year, month=month + 1, day=min(moment.day, 28))


# --- Does a search look at photo metadata? ------------------------------------------------

_PHOTO_FIELD = re.compile(
    r"(?:^|[\s(+\-!])(?:taken_at|format|lens|keywords|title|description"
    r"|camera|exposure|location|place)(?:\.[\w.]+)?:"
)
_FIELD_CLAUSE = re.compile(r'[\w.]+:(?:"[^"]*"|\[[^\]]*[\]}]|\{[^}]*[\]}]|\([^)]*\)|\S+)')
_OPERATORS = re.compile(r"\b(?:AND|OR|NOT)\b")


def involves_photo(query: str, options: SearchOptions) -> bool:
    """Whether a search depends on photo metadata: it sorts, filters or counts by it, names
    a photo field, or has bare words (which search place names and the user's own words)."""
    if options.sort is not None or options.near is not None or options.facets:
        return True
    if _PHOTO_FIELD.search(query):
        return True
    rest = _OPERATORS.sub(" ", _FIELD_CLAUSE.sub(" ", query))
    return any(char.isalnum() for char in rest)


def photo_notice(missing: int, total: int) -> str | None:
    """What to tell a user whose search cannot see some documents' photo metadata."""
    if missing <= 0:
        return None
    return (
        f"{missing} of {total} indexed images have no photo metadata yet (date, camera, place, "
        "keywords): run `deeptag index --refresh-metadata FOLDER` to read it"
    )
