"""Which old savepoints to dispose of: a pure plan over the savepoint history.

Rules, in order of precedence:

1. the newest completed savepoint is never disposed ("the last good one"), and neither is
   anything in ``protected`` (the last savepoint in status, the path the running
   deployment restored from);
2. a savepoint is disposed only when a newer one has completed;
3. of the rest, those beyond ``max_count`` (oldest first) or older than ``max_age`` go.

>>> from flinklet_operator.models import Savepoint, Retention
>>> from datetime import datetime, UTC
>>> history = [Savepoint(location=f"s3://b/savepoint-{i}", timestamp=f"2024-01-0{i}T00:00:00Z",
...                      type="PERIODIC") for i in (1, 2, 3)]
>>> plan = plan_retention(history, Retention(max_count=2), datetime(2024, 1, 4, tzinfo=UTC))
>>> [s.location for s in plan.dispose]
['s3://b/savepoint-1']
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from flinklet_operator.models import Retention, Savepoint, parse_duration, parse_time

__all__ = ["RetentionPlan", "plan_retention"]


@dataclass(frozen=True)
class RetentionPlan:
    keep: list[Savepoint]
    dispose: list[Savepoint]


def plan_retention(
    history: list[Savepoint],
    retention: Retention,
    now: datetime,
    protected: Collection[str] = (),
) -> RetentionPlan:
    """Split ``history`` into what to keep and what to dispose of (both oldest first)."""
    ordered = sorted(history, key=lambda s: parse_time(s.timestamp))
    if len(ordered) <= 1:
        return RetentionPlan(keep=ordered, dispose=[])
    newest = ordered[-1]
    max_age = parse_duration(retention.max_age) if retention.max_age else None
    excess = max(0, len(ordered) - retention.max_count)
    keep: list[Savepoint] = []
    dispose: list[Savepoint] = []
    for index, savepoint in enumerate(ordered):
        too_many = index < excess
        too_old = max_age is not None and now - parse_time(savepoint.timestamp) > max_age
        safe = savepoint is not newest and savepoint.location not in protected
        if safe and (too_many or too_old):
            dispose.append(savepoint)
        else:
            keep.append(savepoint)
    return RetentionPlan(keep=keep, dispose=dispose)
