"""Site calendars: weekly opening hours and courier cut-offs, in local time, answering in UTC."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeAlias
from zoneinfo import ZoneInfo

# Local days whose UTC windows or cut-offs a calendar memoises (a few weeks of look-ups) before starting over.
_CALENDAR_MEMO_DAYS = 64
_DAY = timedelta(days=1)
_MIDNIGHT = time(0)

Window: TypeAlias = tuple[time, time]  # local (open, close)
Interval: TypeAlias = tuple[datetime, datetime]  # [start, end), aware


def require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


def local_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    # fold=0 (PEP 495): an ambiguous autumn wall time is its first occurrence; a wall time inside the spring
    # gap is read with the offset before the change (02:30 on the Berlin spring-forward night = 03:30 CEST).
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _since_midnight(at: time, *, closing: bool = False) -> timedelta:
    if closing and at == _MIDNIGHT:
        return _DAY  # a closing time of 00:00 is midnight at the end of the day
    return timedelta(hours=at.hour, minutes=at.minute, seconds=at.second, microseconds=at.microsecond)


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Opening hours in an IANA time zone: ``days[weekday]`` (0 = Monday) lists local ``(open, close)``.

    A close of 00:00 is midnight at the end of that day. Windows within a day are sorted and disjoint; the
    site opens at least once a week. Methods take aware datetimes in any zone and return aware UTC ones,
    and do their arithmetic in UTC, so a day with a DST change is 23 or 25 hours long as it should be.

    Raises:
        ValueError: not 7 days, unsorted or overlapping windows, never open, or an unknown time zone.
    """

    tz: str
    days: tuple[tuple[Window, ...], ...]
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _always: bool = field(init=False, repr=False, compare=False)
    # A memo of derived values, not state: equality, hashing and every answer ignore it.
    _utc_days: dict[date, tuple[Interval, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", ZoneInfo(self.tz))
        object.__setattr__(self, "_utc_days", {})
        object.__setattr__(self, "days", tuple(tuple(windows) for windows in self.days))
        if len(self.days) != 7:
            raise ValueError(f"opening hours need 7 weekdays, got {len(self.days)}")
        for weekday, windows in enumerate(self.days):
            previous_close = timedelta(0)
            for open_, close in windows:
                opens, closes = _since_midnight(open_), _since_midnight(close, closing=True)
                if opens < previous_close or closes <= opens or open_.tzinfo or close.tzinfo:
                    raise ValueError(f"weekday {weekday}: windows must be naive, sorted and disjoint")
                previous_close = closes
        if not any(self.days):
            raise ValueError("a site must open at least once a week")
        always = all(windows == ((_MIDNIGHT, _MIDNIGHT),) for windows in self.days)
        object.__setattr__(self, "_always", always)

    @classmethod
    def always_open(cls, tz: str = "UTC") -> WeeklyHours:
        return cls(tz, (((_MIDNIGHT, _MIDNIGHT),),) * 7)

    @classmethod
    def daily(cls, tz: str, open_: time, close: time, weekdays: Iterable[int] = range(5)) -> WeeklyHours:
        """The same window on the given weekdays (default Monday to Friday), closed on the others."""
        chosen = set(weekdays)
        return cls(tz, tuple(((open_, close),) if day in chosen else () for day in range(7)))

    def _utc_windows(self, day: date) -> tuple[Interval, ...]:
        """A local day's windows in UTC, memoised: routing asks about the same few days again and again."""
        cached = self._utc_days.get(day)
        if cached is None:
            windows: list[Interval] = []
            for open_, close in self.days[day.weekday()]:
                start = local_to_utc(day, open_, self._zone)
                end = local_to_utc(day + _DAY if close == _MIDNIGHT else day, close, self._zone)
                # A window edge inside a DST gap can map past the next edge: clip, so windows never overlap.
                if windows and start < windows[-1][1]:
                    start = windows[-1][1]
                if end > start:
                    windows.append((start, end))
            cached = tuple(windows)
            if len(self._utc_days) >= _CALENDAR_MEMO_DAYS:
                self._utc_days.clear()
            self._utc_days[day] = cached
        return cached

    def _windows(self, at: datetime) -> Iterator[Interval]:
        """Opening windows in UTC, in order, from the one containing or following ``at``; endless."""
        # From the day before: a window's UTC end can fall on the next local day only at midnight, but
        # starting a day early costs little and needs no reasoning about odd zones.
        day = at.astimezone(self._zone).date() - _DAY
        while True:
            for start, end in self._utc_windows(day):
                if end > at:
                    yield start, end
            day += _DAY

    def _first_window(self, at: datetime) -> Interval:
        return next(self._windows(at))

    def is_open(self, at: datetime) -> bool:
        require_aware("at", at)
        if self._always:
            return True
        start, _ = self._first_window(at)
        return start <= at

    def next_open(self, at: datetime) -> datetime:
        """``at`` itself (in UTC) if the site is open then, else the next opening."""
        require_aware("at", at)
        if self._always:
            return at.astimezone(UTC)
        start, _ = self._first_window(at)
        return max(start, at).astimezone(UTC)

    def add_open_minutes(self, start: datetime, minutes: float) -> datetime:
        """When work of ``minutes`` that progresses only while the site is open, begun at ``start``, ends.

        Zero minutes end at ``start`` even when closed; work that ends exactly at closing time ends then.
        """
        require_aware("start", start)
        if minutes < 0:
            raise ValueError(f"minutes must be >= 0, got {minutes}")
        at, remaining = start.astimezone(UTC), timedelta(minutes=minutes)
        if not remaining or self._always:
            return at + remaining
        for window_start, window_end in self._windows(at):
            begin = max(window_start, at)
            if remaining <= window_end - begin:
                return begin + remaining
            remaining -= window_end - begin
        raise AssertionError("unreachable: _windows is endless")


@dataclass(frozen=True, slots=True)
class CourierCutoffs:
    """Local courier pickup cut-off times per weekday (0 = Monday), in an IANA time zone.

    Raises:
        ValueError: not 7 days, no cut-off in the week, or an unknown time zone.
    """

    tz: str
    days: tuple[tuple[time, ...], ...]
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _utc_days: dict[date, tuple[datetime, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", ZoneInfo(self.tz))
        object.__setattr__(self, "_utc_days", {})
        if len(self.days) != 7 or not any(self.days):
            raise ValueError("cut-offs need 7 weekdays and at least one pickup a week")
        object.__setattr__(self, "days", tuple(tuple(sorted(times)) for times in self.days))

    @classmethod
    def daily(cls, tz: str, cutoff: time, weekdays: Iterable[int] = range(5)) -> CourierCutoffs:
        chosen = set(weekdays)
        return cls(tz, tuple((cutoff,) if day in chosen else () for day in range(7)))

    def next_pickup(self, ready_at: datetime) -> datetime:
        """The first cut-off at or after ``ready_at`` (a parcel ready at 16:00 makes the 16:00 pickup)."""
        require_aware("ready_at", ready_at)
        day = ready_at.astimezone(self._zone).date()
        # Eight days: the week holds a cut-off, and today's may already have passed.
        for offset in range(8):
            current = day + offset * _DAY
            pickups = self._utc_days.get(current)
            if pickups is None:
                # sorted(): a cut-off inside a DST gap maps past the next one (see local_to_utc).
                pickups = tuple(
                    sorted(
                        local_to_utc(current, cutoff, self._zone) for cutoff in self.days[current.weekday()]
                    )
                )
                if len(self._utc_days) >= _CALENDAR_MEMO_DAYS:
                    self._utc_days.clear()
                self._utc_days[current] = pickups
            for pickup in pickups:
                if pickup >= ready_at:
                    return pickup
        raise AssertionError("unreachable: a week holds a cut-off")
