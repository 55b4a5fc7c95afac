"""Savepoint retention: count and age limits, and the savepoints it must never dispose of."""

from __future__ import annotations

from datetime import UTC, datetime

from flinklet_operator.models import Retention, Savepoint
from flinklet_operator.retention import plan_retention

NOW = datetime(2024, 5, 10, tzinfo=UTC)


def history(*days: int) -> list[Savepoint]:
    return [
        Savepoint(
            location=f"s3://b/savepoint-{d}",
            timestamp=f"2024-05-{d:02d}T00:00:00Z",
            type="PERIODIC",
        )
        for d in days
    ]


def locations(items: list[Savepoint]) -> list[str]:
    return [s.location for s in items]


def test_count_keeps_the_newest() -> None:
    plan = plan_retention(history(1, 2, 3, 4, 5), Retention(max_count=3), NOW)
    assert locations(plan.dispose) == ["s3://b/savepoint-1", "s3://b/savepoint-2"]
    assert locations(plan.keep) == [
        "s3://b/savepoint-3",
        "s3://b/savepoint-4",
        "s3://b/savepoint-5",
    ]


def test_age_disposes_of_old_ones_but_only_when_a_newer_one_completed() -> None:
    plan = plan_retention(history(1, 2, 9), Retention(max_age="3d"), NOW)
    assert locations(plan.dispose) == ["s3://b/savepoint-1", "s3://b/savepoint-2"]


def test_the_last_good_savepoint_is_never_disposed_of() -> None:
    plan = plan_retention(history(1), Retention(max_count=1, max_age="1ms"), NOW)
    assert plan.dispose == []
    plan = plan_retention(history(1, 2), Retention(max_count=1, max_age="1ms"), NOW)
    assert locations(plan.dispose) == ["s3://b/savepoint-1"]
    assert locations(plan.keep) == ["s3://b/savepoint-2"]


def test_protected_savepoints_are_kept_whatever_their_age() -> None:
    plan = plan_retention(
        history(1, 2, 3), Retention(max_count=1), NOW, protected={"s3://b/savepoint-1"}
    )
    assert locations(plan.dispose) == ["s3://b/savepoint-2"]


def test_order_of_the_history_does_not_matter() -> None:
    plan = plan_retention(list(reversed(history(1, 2, 3))), Retention(max_count=1), NOW)
    assert locations(plan.dispose) == ["s3://b/savepoint-1", "s3://b/savepoint-2"]


def test_nothing_to_do_within_limits() -> None:
    plan = plan_retention(history(8, 9), Retention(max_count=5, max_age="30d"), NOW)
    assert plan.dispose == [] and len(plan.keep) == 2
