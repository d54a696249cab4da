"""Pure logic of trending statuses (kicau/status_trends.py): recent engagements over a sliding day, the decay with
a status's age, and which statuses may trend."""

from __future__ import annotations

from kicau.ids import id_from_ms
from kicau.status_trends import HALF_LIFE_HOURS, TREND_MIN_ENGAGEMENTS, Candidate, may_trend, ranked, recent_engagements

NOW_MS = 1_796_400_000_000
HOUR_MS = 3_600_000


def test_yesterdays_engagements_weigh_what_is_left_of_today() -> None:
    today = [b"1", b"3", b"2", b"1"]
    yesterday = [b"1", b"4", b"3", b"10"]
    found = {c.status_id: c.recent for c in recent_engagements(today, yesterday, elapsed=0.75)}
    assert found == {1: 3 + 4 * 0.25, 2: 1, 3: 10 * 0.25}


def test_newer_statuses_need_fewer_engagements() -> None:
    new = id_from_ms(NOW_MS - HOUR_MS)
    old = id_from_ms(int(NOW_MS - 2 * HALF_LIFE_HOURS * HOUR_MS))
    few = id_from_ms(NOW_MS - 2 * HOUR_MS)
    order = ranked([Candidate(old, 30), Candidate(new, 9), Candidate(few, TREND_MIN_ENGAGEMENTS - 0.5)], NOW_MS)
    # The old one's 30 count for a quarter: 7.5 against the new one's ~8.5; too few engagements never trend.
    assert order == [new, old]
    assert ranked([Candidate(new, 9), Candidate(old, 40)], NOW_MS) == [old, new]


def test_public_statuses_without_warnings_and_not_replies_may_trend() -> None:
    plain = {"visibility": "public", "in_reply_to_id": None, "spoiler_text": "", "sensitive": False, "reblog": None}
    assert may_trend(plain)
    for change in ({"visibility": "unlisted"}, {"in_reply_to_id": "7"}, {"spoiler_text": "cw"}, {"sensitive": True},
                   {"reblog": {"id": "1"}}):
        assert not may_trend({**plain, **change}), change
