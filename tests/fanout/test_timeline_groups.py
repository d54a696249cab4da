"""How the fanout groups a run of new statuses by timeline (services/fanout/service.py, pure logic): every
timeline receives exactly the run's statuses of the authors it follows (and an author its own), in one group, and
timelines due the same statuses share a group. Pushed in one call per timeline, interleaved authors no longer
reach a shared follower out of order (the push script itself is tested on Redis in tests/kicau/test_feed_lists.py)."""

from __future__ import annotations

import collections
import random

from services.fanout.service import timeline_groups


def _due(run: dict[int, list[int]], followers: dict[int, list[int]]) -> dict[int, set[int]]:
    due: dict[int, set[int]] = {}
    for author, status_ids in run.items():
        for recipient in (author, *followers[author]):
            due.setdefault(recipient, set()).update(status_ids)
    return due


def _received(groups: list[tuple[list[int], list[int]]]) -> dict[int, set[int]]:
    received: dict[int, set[int]] = {}
    for recipients, status_ids in groups:
        for recipient in recipients:
            assert recipient not in received, "a timeline is in one group only: one call, its statuses in order"
            received[recipient] = set(status_ids)
    return received


def _due_parts(groups: list[tuple[list[int], list[int]]]) -> dict[int, set[int]]:
    """What each timeline receives over every group, when a run is grouped in parts."""
    received: dict[int, set[int]] = {}
    for recipients, status_ids in groups:
        for recipient in recipients:
            received.setdefault(recipient, set()).update(status_ids)
    return received


def test_one_author_is_one_group_as_before() -> None:
    assert list(timeline_groups({7: [104, 106]}, {7: [1, 2, 3]})) == [([7, 1, 2, 3], [104, 106])]


def test_interleaved_authors_reach_a_shared_follower_in_one_group() -> None:
    # 104 and 106 by author 7, 105 by author 8: pushed author by author, 105 would land under 106 on timeline 1.
    groups = list(timeline_groups({7: [104, 106], 8: [105]}, {7: [1, 2], 8: [1, 3, 7]}))
    received = _received(groups)
    assert received == {7: {104, 105, 106}, 1: {104, 105, 106}, 2: {104, 106}, 8: {105}, 3: {105}}
    # Timelines due the same statuses share a group (and its packed arguments).
    assert sorted(sorted(r) for r, _ in groups) == [[1, 7], [2], [3, 8]]


def test_followers_of_every_author_of_the_run_are_one_group() -> None:
    """The delivery bench's case: 1,000 readers who all follow the same ten posters."""
    readers = list(range(1000, 2000))
    run = {author: [10_000 + 10 * i + author] for i, author in enumerate(range(1, 11))}
    groups = list(timeline_groups(run, {author: readers for author in run}))
    big = [g for g in groups if len(g[0]) == len(readers)]
    assert len(big) == 1 and sorted(big[0][1]) == sorted(s for ids in run.values() for s in ids)
    assert len(groups) == 11  # the readers, and each author's own timeline


def test_random_graphs_every_timeline_gets_exactly_what_it_is_due() -> None:
    rng = random.Random(11)
    for _ in range(200):
        accounts = list(range(1, 40))
        authors = rng.sample(accounts, rng.randint(1, 6))
        followers = {a: rng.sample([x for x in accounts if x != a], rng.randint(0, 30)) for a in authors}
        next_id = iter(range(1000, 2000))
        run: dict[int, list[int]] = {}
        for _ in range(rng.randint(len(authors), 12)):
            run.setdefault(rng.choice(authors), []).append(next(next_id))
        groups = list(timeline_groups(run, followers))
        assert _received(groups) == _due(run, followers)
        # The entries the fanout counts as written: one per timeline and status it is due.
        assert sum(len(r) * len(s) for r, s in groups) == sum(map(len, _due(run, followers).values()))


def test_a_run_too_large_to_group_at_once_is_grouped_in_parts() -> None:
    """A fanout catching up on many authors: each part's map stays bounded, and every timeline still gets exactly
    what it is due (a timeline in two parts gets two calls, as it would have author by author)."""
    rng = random.Random(5)
    followers = {a: rng.sample(range(100, 400), 120) for a in range(1, 21)}
    run = {a: [1000 + 10 * i + a] for i, a in enumerate(followers)}
    parts = list(timeline_groups(run, followers, max_pairs=300))
    assert _due_parts(parts) == _due(run, followers)
    _received(list(timeline_groups(run, followers)))  # whole: one group a timeline
    # In parts of two authors each (121 pairs an author, 300 at most a part), so a follower of authors of
    # different parts is in a group of each.
    appearances = collections.Counter(r for rs, _ in parts for r in rs)
    assert max(appearances.values()) > 1
    assert all(len(rs) <= 242 for rs, _ in parts)
