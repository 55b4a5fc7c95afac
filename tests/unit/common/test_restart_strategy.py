"""Restart strategies: configuration objects and the runtime backoff sequences."""

import datetime
import random
import re

import pytest

from flinklet.common.configuration import Configuration
from flinklet.common.restart_strategy import (
    ExponentialDelayRestartBackoff,
    ExponentialDelayRestartStrategyConfiguration,
    FailureRateRestartBackoff,
    FixedDelayRestartBackoff,
    FixedDelayRestartStrategyConfiguration,
    NoRestartBackoff,
    RestartBackoff,
    RestartStrategies,
    restart_backoff_from,
    restart_strategy_from_configuration,
)
from flinklet.common.time import Duration, Time
from flinklet.errors import ConfigurationError


def _decisions(backoff: RestartBackoff, failure_times: list[int]) -> list[bool]:
    decisions = []
    for now in failure_times:
        backoff.notify_failure(now)
        decisions.append(backoff.can_restart())
    return decisions


def _exponential(
    jitter: float = 0.0, attempts: int = 2_147_483_647, rng: random.Random | None = None
) -> ExponentialDelayRestartBackoff:
    config = ExponentialDelayRestartStrategyConfiguration(
        initial_backoff_ms=1_000,
        max_backoff_ms=5_000,
        backoff_multiplier=2.0,
        reset_backoff_threshold_ms=10_000,
        jitter_factor=jitter,
        attempts_before_reset_backoff=attempts,
    )
    return ExponentialDelayRestartBackoff(config, rng)


# --- fixed delay ------------------------------------------------------------------------


def test_fixed_delay_allows_exactly_n_restarts() -> None:
    backoff = restart_backoff_from(Configuration(), RestartStrategies.fixed_delay_restart(3, 10))
    assert _decisions(backoff, [0, 1, 2, 3]) == [True, True, True, False]


def test_fixed_delay_waits_the_delay() -> None:
    backoff = restart_backoff_from(Configuration(), RestartStrategies.fixed_delay_restart(3, 250))
    backoff.notify_failure(0)
    assert backoff.backoff_ms() == 250


@pytest.mark.parametrize(
    "delay", [Duration.of_seconds(2), Time.seconds(2), datetime.timedelta(seconds=2), 2_000]
)
def test_fixed_delay_accepts_any_size_of_time(delay: object) -> None:
    strategy = RestartStrategies.fixed_delay_restart(1, delay)  # type: ignore[arg-type]
    assert strategy == FixedDelayRestartStrategyConfiguration(1, 2_000)


def test_fixed_delay_getters_return_timedelta() -> None:
    strategy = FixedDelayRestartStrategyConfiguration(4, 1_500)
    assert (strategy.get_restart_attempts(), strategy.get_delay_between_attempts_interval()) == (
        4,
        datetime.timedelta(milliseconds=1_500),
    )


def test_fixed_delay_with_zero_attempts_never_restarts() -> None:
    backoff = FixedDelayRestartBackoff(FixedDelayRestartStrategyConfiguration(0, 0))
    assert _decisions(backoff, [0]) == [False]


def test_fixed_delay_rejects_negative_attempts() -> None:
    with pytest.raises(
        ConfigurationError, match=re.escape("restart-strategy.fixed-delay.attempts")
    ):
        RestartStrategies.fixed_delay_restart(-1, 0)


# --- failure rate ------------------------------------------------------------------------


def test_failure_rate_fails_on_one_failure_too_many_in_the_interval() -> None:
    backoff = restart_backoff_from(
        Configuration(), RestartStrategies.failure_rate_restart(2, 1_000, 50)
    )
    assert _decisions(backoff, [0, 100, 200]) == [True, True, False]


def test_failure_rate_window_slides() -> None:
    backoff = restart_backoff_from(
        Configuration(), RestartStrategies.failure_rate_restart(2, 1_000, 50)
    )
    # At 1500 the failure at 0 has left the window; at 1800 three are inside (900..1800).
    assert _decisions(backoff, [0, 900, 1_500, 1_800]) == [True, True, True, False]


def test_failure_rate_failure_exactly_one_interval_ago_has_left_the_window() -> None:
    backoff = restart_backoff_from(
        Configuration(), RestartStrategies.failure_rate_restart(1, 1_000, 0)
    )
    assert _decisions(backoff, [0, 1_000]) == [True, True]


def test_failure_rate_waits_the_delay() -> None:
    backoff = restart_backoff_from(
        Configuration(), RestartStrategies.failure_rate_restart(1, 60_000, 700)
    )
    backoff.notify_failure(0)
    assert backoff.backoff_ms() == 700


def test_failure_rate_rejects_zero_interval() -> None:
    with pytest.raises(ConfigurationError, match="failure-rate-interval"):
        RestartStrategies.failure_rate_restart(1, 0, 0)


# --- exponential delay -------------------------------------------------------------------


def test_exponential_backoff_grows_by_multiplier_and_caps() -> None:
    backoff = _exponential()
    waits = []
    for now in [0, 1_500, 4_000, 9_000, 14_500]:
        backoff.notify_failure(now)
        waits.append(backoff.backoff_ms())
    assert waits == [1_000, 2_000, 4_000, 5_000, 5_000]


def test_exponential_backoff_resets_after_quiet_time() -> None:
    backoff = _exponential()
    backoff.notify_failure(0)  # restarts at 1000
    backoff.notify_failure(1_500)  # waits 2000, restarts at 3500
    backoff.notify_failure(3_500 + 10_000)  # ran for the threshold: start over
    assert backoff.backoff_ms() == 1_000


def test_exponential_backoff_does_not_reset_just_before_threshold() -> None:
    backoff = _exponential()
    backoff.notify_failure(0)  # restarts at 1000
    backoff.notify_failure(1_000 + 9_999)
    assert backoff.backoff_ms() == 2_000


def test_exponential_jitter_stays_within_factor() -> None:
    waits = set()
    for seed in range(50):
        backoff = _exponential(jitter=0.5, rng=random.Random(seed))
        backoff.notify_failure(0)
        waits.add(backoff.backoff_ms())
    assert (min(waits) >= 500, max(waits) <= 1_500, len(waits) > 1) == (True, True, True)


def test_exponential_jitter_never_exceeds_max_backoff() -> None:
    backoff = _exponential(jitter=1.0, rng=random.Random(3))
    waits = []
    for now in range(10):
        backoff.notify_failure(now)
        waits.append(backoff.backoff_ms())
    assert max(waits) <= 5_000


def test_exponential_attempts_limit_fails_the_job() -> None:
    assert _decisions(_exponential(attempts=2), [0, 10, 20]) == [True, True, False]


def test_exponential_attempt_count_resets_with_backoff() -> None:
    backoff = _exponential(attempts=1)
    assert _decisions(backoff, [0, 1_000 + 10_000]) == [True, True]


def test_exponential_rejects_jitter_above_one() -> None:
    with pytest.raises(ConfigurationError, match="jitter factor must be within"):
        RestartStrategies.exponential_delay_restart(1_000, 5_000, 2.0, 10_000, 1.5)


def test_exponential_rejects_max_below_initial() -> None:
    with pytest.raises(ConfigurationError, match="must not be below the initial backoff"):
        RestartStrategies.exponential_delay_restart(5_000, 1_000, 2.0, 10_000, 0.1)


def test_exponential_getters() -> None:
    strategy = RestartStrategies.exponential_delay_restart(
        datetime.timedelta(seconds=1), Duration.of_minutes(1), 1.5, Time.hours(1), 0.1
    )
    assert isinstance(strategy, ExponentialDelayRestartStrategyConfiguration)
    assert (strategy.get_initial_backoff(), strategy.get_max_backoff()) == (
        datetime.timedelta(seconds=1),
        datetime.timedelta(minutes=1),
    )
    assert (strategy.get_backoff_multiplier(), strategy.get_jitter_factor()) == (1.5, 0.1)


# --- choosing the strategy -----------------------------------------------------------------


def test_default_without_checkpointing_is_no_restart() -> None:
    backoff = restart_backoff_from(Configuration(), None, checkpointing_enabled=False)
    assert isinstance(backoff, NoRestartBackoff)
    assert _decisions(backoff, [0]) == [False]


def test_default_with_checkpointing_is_exponential_delay_with_flink_defaults() -> None:
    strategy = restart_strategy_from_configuration(Configuration(), checkpointing_enabled=True)
    assert strategy == ExponentialDelayRestartStrategyConfiguration(
        1_000, 60_000, 1.5, 3_600_000, 0.1, 2_147_483_647
    )


def test_configuration_selects_fixed_delay() -> None:
    conf = Configuration.from_dict(
        {
            "restart-strategy.type": "fixeddelay",
            "restart-strategy.fixed-delay.attempts": 2,
            "restart-strategy.fixed-delay.delay": "3 s",
        }
    )
    backoff = restart_backoff_from(conf, None, checkpointing_enabled=True)
    assert isinstance(backoff, FixedDelayRestartBackoff)
    assert _decisions(backoff, [0, 1, 2]) == [True, True, False]
    assert backoff.backoff_ms() == 3_000


def test_configuration_selects_failure_rate() -> None:
    conf = Configuration().set_string("restart-strategy.type", "failure-rate")
    assert isinstance(restart_backoff_from(conf), FailureRateRestartBackoff)


def test_configured_none_wins_over_checkpointing_default() -> None:
    conf = Configuration().set_string("restart-strategy.type", "off")
    assert isinstance(restart_backoff_from(conf, None, True), NoRestartBackoff)


def test_explicit_strategy_wins_over_configuration() -> None:
    conf = Configuration().set_string("restart-strategy.type", "none")
    backoff = restart_backoff_from(conf, RestartStrategies.fixed_delay_restart(1, 0))
    assert isinstance(backoff, FixedDelayRestartBackoff)


def test_fall_back_restart_uses_configuration() -> None:
    conf = Configuration().set_string("restart-strategy.type", "exponential-delay")
    backoff = restart_backoff_from(conf, RestartStrategies.fall_back_restart())
    assert isinstance(backoff, ExponentialDelayRestartBackoff)


def test_invalid_configured_value_raises() -> None:
    conf = Configuration.from_dict(
        {"restart-strategy.type": "fixed-delay", "restart-strategy.fixed-delay.delay": "soon"}
    )
    with pytest.raises(
        ConfigurationError, match=re.escape("'restart-strategy.fixed-delay.delay' = 'soon'")
    ):
        restart_backoff_from(conf)


@pytest.mark.parametrize(
    "strategy",
    [
        RestartStrategies.no_restart(),
        RestartStrategies.fixed_delay_restart(3, 10_000),
        RestartStrategies.failure_rate_restart(2, 60_000, 500),
        RestartStrategies.exponential_delay_restart(100, 10_000, 3.0, 600_000, 0.25),
    ],
)
def test_config_dict_round_trips(strategy: object) -> None:
    conf = Configuration.from_dict(strategy.to_config_dict())  # type: ignore[attr-defined]
    assert restart_strategy_from_configuration(conf, checkpointing_enabled=True) == strategy


def test_describe_reports_usage() -> None:
    backoff = restart_backoff_from(Configuration(), RestartStrategies.fixed_delay_restart(3, 1_000))
    backoff.notify_failure(0)
    assert backoff.describe() == "fixed-delay: 1 of 3 restarts used, 1 s between restarts"


def test_description_of_no_restart() -> None:
    assert RestartStrategies.no_restart().get_description() == "Restart deactivated."
