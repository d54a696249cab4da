"""Staff's dashboard figures, their pure parts (kicau/instance_measures.py, kicau/instance_usage.py and the fanout's
``daily_activity``): reading a period, the measures' shape, counting reports by the day they were filed and
resolved, and what a batch adds to each day's activity."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from kicau.events import Event, StatusCreated, StatusDeleted, StatusFavourited
from kicau.ids import id_from_ms
from kicau.instance_dimensions import human_size, software_versions, space_usage
from kicau.instance_measures import MAX_DAYS, Period, day_iso, entity, period_of, report_measures
from kicau.instance_usage import daily_activity_commands
from kicau.resp import command
from kicau.web import ApiError
from services.fanout.service import daily_activity

DAY = (date(2026, 12, 7) - date(1970, 1, 1)).days


def at(day: int, hour: int = 12) -> int:
    """An id made at ``hour`` o'clock of ``day`` (UTC)."""
    return id_from_ms((day * 86400 + hour * 3600) * 1000) + 1


def test_a_period_is_whole_days_in_utc() -> None:
    assert period_of("2026-12-07", "2026-12-07") == Period(DAY, DAY)
    assert period_of("2026-12-06T23:30:00-02:00", "2026-12-08T00:00:00Z") == Period(DAY, DAY + 1)
    assert period_of("2026-12-01T10:00:00", "2026-12-07T23:59:59.999+00:00") == Period(DAY - 6, DAY)
    assert Period(DAY - 6, DAY).before() == Period(DAY - 13, DAY - 7)
    assert day_iso(DAY) == "2026-12-07T00:00:00.000+00:00"
    assert len(period_of("2025-12-07", "2026-12-07").days) == MAX_DAYS


@pytest.mark.parametrize(("start", "end", "code"), [
    (None, "2026-12-07", 400), ("2026-12-07", "", 400), ("7 Dec", "2026-12-07", 422), (7, "2026-12-07", 422),
    ("2026-12-08", "2026-12-07", 422), ("2025-12-06", "2026-12-07", 422), ("1970-01-01", "1970-01-02", 422),
    ("2026-13-01", "2026-12-07", 422), ("2" * 50, "2026-12-07", 422)])
def test_what_names_no_period(start: object, end: object, code: int) -> None:
    with pytest.raises(ApiError) as refused:
        period_of(start, end)
    assert refused.value.status_code == code


def test_a_measure_has_a_value_a_day_and_its_totals_as_strings() -> None:
    assert entity("new_users", Period(DAY - 1, DAY), [3, 4], 7, 2) == {
        "key": "new_users", "unit": None, "total": "7", "human_value": "7", "previous_total": "2",
        "data": [{"date": "2026-12-06T00:00:00.000+00:00", "value": "3"},
                 {"date": "2026-12-07T00:00:00.000+00:00", "value": "4"}]}


def test_reports_count_on_the_day_filed_and_the_day_resolved() -> None:
    period = Period(DAY - 1, DAY)  # the period before: DAY - 3 and DAY - 2
    resolved_today = datetime(2026, 12, 7, 9, tzinfo=UTC)
    reports = [(DAY, None), (DAY, resolved_today), (DAY - 1, None), (DAY - 2, datetime(2026, 12, 6, 1)),
               (DAY - 3, None), (DAY - 40, resolved_today), (DAY - 4, None)]
    found = report_measures(["opened_reports", "resolved_reports"], period, reports)
    assert [d["value"] for d in found["opened_reports"]["data"]] == ["1", "2"]
    assert (found["opened_reports"]["total"], found["opened_reports"]["previous_total"]) == ("3", "2")
    assert [d["value"] for d in found["resolved_reports"]["data"]] == ["1", "2"]
    assert (found["resolved_reports"]["total"], found["resolved_reports"]["previous_total"]) == ("3", "0")
    assert list(report_measures(["opened_reports"], period, reports)) == ["opened_reports"]


def test_a_batch_counts_its_posters_and_interactions_by_day() -> None:
    events: list[Event] = [
        StatusCreated(status_id=at(DAY), account_id=1, status_json="{}", language="en"),
        StatusCreated(status_id=at(DAY), account_id=1, status_json="{}", in_reply_to_account=1,  # own thread
                      language="id"),
        StatusCreated(status_id=at(DAY), account_id=2, status_json="{}", in_reply_to_account=1),  # a reply
        StatusCreated(status_id=at(DAY), account_id=2, status_json="{}", reblog_of=9, reblog_author=1,
                      language="en"),  # a reblog: no language of its own
        StatusCreated(status_id=at(DAY), account_id=1, status_json="{}", reblog_of=8, reblog_author=1),  # own
        StatusFavourited(account_id=3, status_id=9, author_id=1, favourite_id=at(DAY - 1, 23), status="{}"),
        StatusFavourited(account_id=1, status_id=9, author_id=1, favourite_id=at(DAY), status="{}"),  # own
        StatusDeleted(status_id=at(DAY), account_id=4),
    ]
    posters, interactions, languages = daily_activity(events)
    assert sorted(set(posters)) == [(DAY, 1), (DAY, 2)]
    assert sorted(interactions) == [DAY - 1, DAY, DAY]
    assert sorted(languages) == [(DAY, "en"), (DAY, "id")]
    kept = b"%d" % (800 * 86400)
    assert daily_activity_commands(posters, interactions, [(DAY, "en"), (DAY, "en")]) == [
        command(b"PFADD", f"usage:{{instance}}:posters:{DAY}".encode(), b"1", b"2"),
        command(b"EXPIRE", f"usage:{{instance}}:posters:{DAY}".encode(), kept),
        command(b"INCRBY", f"usage:{{instance}}:interactions:{DAY - 1}".encode(), b"1"),
        command(b"EXPIRE", f"usage:{{instance}}:interactions:{DAY - 1}".encode(), kept),
        command(b"INCRBY", f"usage:{{instance}}:interactions:{DAY}".encode(), b"2"),
        command(b"EXPIRE", f"usage:{{instance}}:interactions:{DAY}".encode(), kept),
        command(b"HINCRBY", f"usage:{{instance}}:languages:{DAY}".encode(), b"en", b"2"),
        command(b"EXPIRE", f"usage:{{instance}}:languages:{DAY}".encode(), kept),
    ]
    assert daily_activity_commands([], []) == []


def test_space_is_shown_in_bytes_and_as_a_person_reads_it() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 1536, 10 * 1024**2, 1023 * 1024**3, 5 * 1024**5)] == [
        "0 Bytes", "1023 Bytes", "1 KB", "1.5 KB", "10 MB", "1023 GB", "5 PB"]
    used = space_usage(2048, {"statuses": 10, "media_files": 3, "page_pictures": 1})
    assert [(d["key"], d["value"], d["unit"]) for d in used["data"]] == [
        ("cassandra", str(14 * 1024**2), "bytes"), ("redis", "2048", "bytes"), ("media", str(4 * 1024**2), "bytes")]
    versions = software_versions("7.0.15", "5.0.8")
    assert [(d["key"], d["value"]) for d in versions["data"]][2:] == [("redis", "7.0.15"), ("cassandra", "5.0.8")]
