"""Pure logic of trending hashtags (kicau/tag_trends.py): a hashtag's score from its seven days, and the ranking."""

from __future__ import annotations

from kicau.tag_trends import TREND_MIN_ACCOUNTS, Trend, ranked, scored


def history(*accounts: int) -> list[int]:
    """History counts as ``tag_history.history_counts`` reads them (uses, accounts a day, today first)."""
    return [n for a in accounts for n in (a * 2, a)]


def test_recent_use_slides_over_a_day_and_is_measured_against_the_usual() -> None:
    # Early in the day, yesterday's accounts still weigh almost whole; late, hardly.
    assert scored("t", history(2, 10, 0, 0, 0, 0, 0), elapsed=0.1).recent == 2 + 10 * 0.9
    assert scored("t", history(2, 10, 0, 0, 0, 0, 0), elapsed=0.9).recent == 2 + 10 * 0.1
    # The usual is the mean of the five days before yesterday.
    steady = scored("steady", history(10, 0, 10, 10, 10, 10, 10), elapsed=0.5)
    assert (steady.recent, steady.score) == (10, 0)
    burst = scored("burst", history(10, 0, 1, 1, 1, 1, 1), elapsed=0.5)
    assert burst.score == 9


def test_only_what_enough_accounts_use_more_than_usual_trends() -> None:
    trends = [Trend("few", 4.0, TREND_MIN_ACCOUNTS - 1), Trend("usual", 0.0, 50), Trend("b", 6.0, 6),
              Trend("a", 6.0, 8), Trend("most", 20.0, 25)]
    assert ranked(trends) == ["most", "a", "b"]  # ties by name
    assert ranked(trends, limit=2) == ["most", "a"]
