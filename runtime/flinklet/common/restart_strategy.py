"""Restart strategies: whether and when a failed job is restarted.

Two halves, kept apart as in Flink. The user-facing half is PyFlink's
``RestartStrategies`` factory, returning immutable, self-validating
``RestartStrategyConfiguration`` values (``env.set_restart_strategy(...)``), plus the
``restart-strategy.*`` configuration keys. The engine-facing half is
:class:`RestartBackoff`: a stateful object built by :func:`restart_backoff_from` that
the JobManager asks, after each failure, whether to restart and how long to wait::

    backoff = restart_backoff_from(conf, explicit=None, checkpointing_enabled=True)
    backoff.notify_failure(now_ms)
    if backoff.can_restart():
        wait(backoff.backoff_ms()); restart()
    else:
        fail_job()

Precedence: an explicit strategy from the program, then ``restart-strategy.type``, then
Flink's default: no restarts without checkpointing, exponential-delay with it.

>>> backoff = restart_backoff_from(Configuration(), RestartStrategies.fixed_delay_restart(2, 500))
>>> backoff.notify_failure(0); backoff.can_restart(), backoff.backoff_ms()
(True, 500)
"""

from __future__ import annotations

import abc
import collections
import datetime
import random
from dataclasses import dataclass

from flinklet.common.config_options import RestartStrategyOptions as Opts
from flinklet.common.configuration import Configuration
from flinklet.common.time import Duration, Time, format_duration_millis, to_millis
from flinklet.errors import ConfigurationError

__all__ = [
    "ExponentialDelayRestartBackoff",
    "ExponentialDelayRestartStrategyConfiguration",
    "FailureRateRestartBackoff",
    "FailureRateRestartStrategyConfiguration",
    "FallbackRestartStrategyConfiguration",
    "FixedDelayRestartBackoff",
    "FixedDelayRestartStrategyConfiguration",
    "NoRestartBackoff",
    "NoRestartStrategyConfiguration",
    "RestartBackoff",
    "RestartStrategies",
    "RestartStrategyConfiguration",
    "restart_backoff_from",
    "restart_strategy_from_configuration",
]

TimeSize = Duration | Time | datetime.timedelta | int

_INT_MAX = 2_147_483_647


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigurationError(message)


def _int_at_least(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _td(millis: int) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=millis)


def _fmt(millis: int) -> str:
    return format_duration_millis(millis)


# --- configuration: what the user asks for ---------------------------------------------


class RestartStrategyConfiguration(abc.ABC):
    """A restart strategy as the user configured it (immutable)."""

    @abc.abstractmethod
    def get_description(self) -> str:
        """A one-line, human-readable summary."""

    @abc.abstractmethod
    def to_config_dict(self) -> dict[str, str]:
        """The ``restart-strategy.*`` entries that configure the same strategy."""


@dataclass(frozen=True)
class NoRestartStrategyConfiguration(RestartStrategyConfiguration):
    """Fail the job on its first failure."""

    def get_description(self) -> str:
        return "Restart deactivated."

    def to_config_dict(self) -> dict[str, str]:
        return {Opts.RESTART_STRATEGY.key: "none"}


@dataclass(frozen=True)
class FallbackRestartStrategyConfiguration(RestartStrategyConfiguration):
    """Use whatever the cluster configuration says (``restart-strategy.*``)."""

    def get_description(self) -> str:
        return "Cluster level default restart strategy"

    def to_config_dict(self) -> dict[str, str]:
        return {}


@dataclass(frozen=True)
class FixedDelayRestartStrategyConfiguration(RestartStrategyConfiguration):
    """Restart at most ``restart_attempts`` times, waiting the same delay each time."""

    restart_attempts: int
    delay_between_attempts_ms: int

    def __post_init__(self) -> None:
        _check(
            _int_at_least(self.restart_attempts, 0),
            f"fixed-delay restart attempts must be 0 or more, got {self.restart_attempts}; "
            "set restart-strategy.fixed-delay.attempts",
        )
        _check(
            _int_at_least(self.delay_between_attempts_ms, 0),
            f"fixed-delay delay must not be negative, got {self.delay_between_attempts_ms} ms; "
            "set restart-strategy.fixed-delay.delay",
        )

    def get_restart_attempts(self) -> int:
        return self.restart_attempts

    def get_delay_between_attempts_interval(self) -> datetime.timedelta:
        return _td(self.delay_between_attempts_ms)

    def get_description(self) -> str:
        return (
            f"Restart with fixed delay ({_fmt(self.delay_between_attempts_ms)}). "
            f"#{self.restart_attempts} restart attempts."
        )

    def to_config_dict(self) -> dict[str, str]:
        return {
            Opts.RESTART_STRATEGY.key: "fixed-delay",
            Opts.FIXED_DELAY_ATTEMPTS.key: str(self.restart_attempts),
            Opts.FIXED_DELAY_DELAY.key: _fmt(self.delay_between_attempts_ms),
        }


@dataclass(frozen=True)
class FailureRateRestartStrategyConfiguration(RestartStrategyConfiguration):
    """Restart unless more than ``max_failure_rate`` failures fall within one interval."""

    max_failure_rate: int
    failure_interval_ms: int
    delay_between_attempts_ms: int

    def __post_init__(self) -> None:
        _check(
            _int_at_least(self.max_failure_rate, 1),
            f"failure-rate max failures per interval must be 1 or more, got "
            f"{self.max_failure_rate}; set restart-strategy.failure-rate.max-failures-per-interval",
        )
        _check(
            _int_at_least(self.failure_interval_ms, 1),
            f"failure-rate interval must be positive, got {self.failure_interval_ms} ms; "
            "set restart-strategy.failure-rate.failure-rate-interval, e.g. '1 min'",
        )
        _check(
            _int_at_least(self.delay_between_attempts_ms, 0),
            f"failure-rate delay must not be negative, got {self.delay_between_attempts_ms} ms; "
            "set restart-strategy.failure-rate.delay",
        )

    def get_max_failure_rate(self) -> int:
        return self.max_failure_rate

    def get_failure_interval(self) -> datetime.timedelta:
        return _td(self.failure_interval_ms)

    def get_delay_between_attempts_interval(self) -> datetime.timedelta:
        return _td(self.delay_between_attempts_ms)

    def get_description(self) -> str:
        return (
            f"Failure rate restart with maximum of {self.max_failure_rate} failures within "
            f"interval {_fmt(self.failure_interval_ms)} and fixed delay "
            f"{_fmt(self.delay_between_attempts_ms)}."
        )

    def to_config_dict(self) -> dict[str, str]:
        return {
            Opts.RESTART_STRATEGY.key: "failure-rate",
            Opts.FAILURE_RATE_MAX_FAILURES_PER_INTERVAL.key: str(self.max_failure_rate),
            Opts.FAILURE_RATE_FAILURE_RATE_INTERVAL.key: _fmt(self.failure_interval_ms),
            Opts.FAILURE_RATE_DELAY.key: _fmt(self.delay_between_attempts_ms),
        }


@dataclass(frozen=True)
class ExponentialDelayRestartStrategyConfiguration(RestartStrategyConfiguration):
    """Restart with a wait that grows by ``backoff_multiplier`` up to ``max_backoff_ms``."""

    initial_backoff_ms: int
    max_backoff_ms: int
    backoff_multiplier: float
    reset_backoff_threshold_ms: int
    jitter_factor: float
    attempts_before_reset_backoff: int = _INT_MAX

    def __post_init__(self) -> None:
        key = "restart-strategy.exponential-delay."
        _check(
            _int_at_least(self.initial_backoff_ms, 1),
            f"initial backoff must be at least 1 ms, got {self.initial_backoff_ms}; "
            f"set {key}initial-backoff",
        )
        _check(
            _int_at_least(self.max_backoff_ms, self.initial_backoff_ms),
            f"max backoff ({self.max_backoff_ms} ms) must not be below the initial backoff "
            f"({self.initial_backoff_ms} ms); raise {key}max-backoff",
        )
        _check(
            _number(self.backoff_multiplier) and self.backoff_multiplier >= 1.0,
            f"backoff multiplier must be 1.0 or more, got {self.backoff_multiplier}; "
            f"set {key}backoff-multiplier",
        )
        _check(
            _int_at_least(self.reset_backoff_threshold_ms, 1),
            f"reset backoff threshold must be positive, got {self.reset_backoff_threshold_ms} "
            f"ms; set {key}reset-backoff-threshold",
        )
        _check(
            _number(self.jitter_factor) and 0.0 <= self.jitter_factor <= 1.0,
            f"jitter factor must be within [0, 1], got {self.jitter_factor}; "
            f"set {key}jitter-factor",
        )
        _check(
            _int_at_least(self.attempts_before_reset_backoff, 1),
            f"attempts before reset must be 1 or more, got "
            f"{self.attempts_before_reset_backoff}; set {key}attempts-before-reset-backoff",
        )

    def get_initial_backoff(self) -> datetime.timedelta:
        return _td(self.initial_backoff_ms)

    def get_max_backoff(self) -> datetime.timedelta:
        return _td(self.max_backoff_ms)

    def get_backoff_multiplier(self) -> float:
        return self.backoff_multiplier

    def get_reset_backoff_threshold(self) -> datetime.timedelta:
        return _td(self.reset_backoff_threshold_ms)

    def get_jitter_factor(self) -> float:
        return self.jitter_factor

    def get_description(self) -> str:
        return (
            f"Restart with exponential backoff: initial {_fmt(self.initial_backoff_ms)}, "
            f"max {_fmt(self.max_backoff_ms)}, multiplier {self.backoff_multiplier}, "
            f"reset after {_fmt(self.reset_backoff_threshold_ms)}, jitter {self.jitter_factor}."
        )

    def to_config_dict(self) -> dict[str, str]:
        return {
            Opts.RESTART_STRATEGY.key: "exponential-delay",
            Opts.EXPONENTIAL_DELAY_INITIAL_BACKOFF.key: _fmt(self.initial_backoff_ms),
            Opts.EXPONENTIAL_DELAY_MAX_BACKOFF.key: _fmt(self.max_backoff_ms),
            Opts.EXPONENTIAL_DELAY_BACKOFF_MULTIPLIER.key: repr(self.backoff_multiplier),
            Opts.EXPONENTIAL_DELAY_RESET_BACKOFF_THRESHOLD.key: _fmt(
                self.reset_backoff_threshold_ms
            ),
            Opts.EXPONENTIAL_DELAY_JITTER_FACTOR.key: repr(self.jitter_factor),
            Opts.EXPONENTIAL_DELAY_ATTEMPTS.key: str(self.attempts_before_reset_backoff),
        }


class RestartStrategies:
    """PyFlink's factory of restart strategies; sizes of time are int ms or durations.

    >>> RestartStrategies.fixed_delay_restart(3, Duration.of_seconds(10)).get_restart_attempts()
    3
    """

    @staticmethod
    def no_restart() -> RestartStrategyConfiguration:
        return NoRestartStrategyConfiguration()

    @staticmethod
    def fall_back_restart() -> RestartStrategyConfiguration:
        return FallbackRestartStrategyConfiguration()

    @staticmethod
    def fixed_delay_restart(
        restart_attempts: int, delay_between_attempts: TimeSize
    ) -> RestartStrategyConfiguration:
        return FixedDelayRestartStrategyConfiguration(
            restart_attempts, to_millis(delay_between_attempts)
        )

    @staticmethod
    def failure_rate_restart(
        failure_rate: int, failure_interval: TimeSize, delay_interval: TimeSize
    ) -> RestartStrategyConfiguration:
        return FailureRateRestartStrategyConfiguration(
            failure_rate, to_millis(failure_interval), to_millis(delay_interval)
        )

    @staticmethod
    def exponential_delay_restart(
        initial_backoff: TimeSize,
        max_backoff: TimeSize,
        backoff_multiplier: float,
        reset_backoff_threshold: TimeSize,
        jitter_factor: float,
    ) -> RestartStrategyConfiguration:
        return ExponentialDelayRestartStrategyConfiguration(
            to_millis(initial_backoff),
            to_millis(max_backoff),
            float(backoff_multiplier),
            to_millis(reset_backoff_threshold),
            float(jitter_factor),
        )


def restart_strategy_from_configuration(
    configuration: Configuration, checkpointing_enabled: bool
) -> RestartStrategyConfiguration:
    """The strategy the ``restart-strategy.*`` keys describe (or Flink's default)."""
    name = configuration.get(Opts.RESTART_STRATEGY)
    if name is None:
        name = "exponential-delay" if checkpointing_enabled else "none"
    if name == "fixed-delay":
        return FixedDelayRestartStrategyConfiguration(
            configuration.get(Opts.FIXED_DELAY_ATTEMPTS),
            configuration.get(Opts.FIXED_DELAY_DELAY),
        )
    if name == "failure-rate":
        return FailureRateRestartStrategyConfiguration(
            configuration.get(Opts.FAILURE_RATE_MAX_FAILURES_PER_INTERVAL),
            configuration.get(Opts.FAILURE_RATE_FAILURE_RATE_INTERVAL),
            configuration.get(Opts.FAILURE_RATE_DELAY),
        )
    if name == "exponential-delay":
        return ExponentialDelayRestartStrategyConfiguration(
            configuration.get(Opts.EXPONENTIAL_DELAY_INITIAL_BACKOFF),
            configuration.get(Opts.EXPONENTIAL_DELAY_MAX_BACKOFF),
            configuration.get(Opts.EXPONENTIAL_DELAY_BACKOFF_MULTIPLIER),
            configuration.get(Opts.EXPONENTIAL_DELAY_RESET_BACKOFF_THRESHOLD),
            configuration.get(Opts.EXPONENTIAL_DELAY_JITTER_FACTOR),
            configuration.get(Opts.EXPONENTIAL_DELAY_ATTEMPTS),
        )
    return NoRestartStrategyConfiguration()


# --- runtime: the JobManager's per-job decision object ---------------------------------


class RestartBackoff(abc.ABC):
    """Decides, after each failure, whether the job restarts and after how long.

    Call :meth:`notify_failure` first, then :meth:`can_restart` and :meth:`backoff_ms`.
    """

    @abc.abstractmethod
    def notify_failure(self, now_ms: int) -> None:
        """Record a failure that happened at ``now_ms`` (epoch or monotonic ms)."""

    @abc.abstractmethod
    def can_restart(self) -> bool:
        """Whether the job may restart after the failures recorded so far."""

    @abc.abstractmethod
    def backoff_ms(self) -> int:
        """How long to wait before the restart that follows the latest failure."""

    @abc.abstractmethod
    def describe(self) -> str:
        """The strategy and its current state, for logs and the REST API."""


class NoRestartBackoff(RestartBackoff):
    """Never restarts."""

    def notify_failure(self, now_ms: int) -> None:
        return None

    def can_restart(self) -> bool:
        return False

    def backoff_ms(self) -> int:
        return 0

    def describe(self) -> str:
        return "none: the job fails on its first failure"


class FixedDelayRestartBackoff(RestartBackoff):
    """Allows exactly ``restart_attempts`` restarts, each after the same delay."""

    def __init__(self, config: FixedDelayRestartStrategyConfiguration) -> None:
        self._config = config
        self._failures = 0

    def notify_failure(self, now_ms: int) -> None:
        self._failures += 1

    def can_restart(self) -> bool:
        return self._failures <= self._config.restart_attempts

    def backoff_ms(self) -> int:
        return self._config.delay_between_attempts_ms

    def describe(self) -> str:
        used = min(self._failures, self._config.restart_attempts)
        return (
            f"fixed-delay: {used} of {self._config.restart_attempts} restarts used, "
            f"{_fmt(self._config.delay_between_attempts_ms)} between restarts"
        )


class FailureRateRestartBackoff(RestartBackoff):
    """Restarts while at most ``max_failure_rate`` failures fall in the sliding window.

    The window is the ``failure_interval_ms`` up to the latest failure: a failure at
    ``t`` still counts at ``now`` while ``now - t < failure_interval_ms``.
    """

    def __init__(self, config: FailureRateRestartStrategyConfiguration) -> None:
        self._config = config
        self._window: collections.deque[int] = collections.deque()

    def notify_failure(self, now_ms: int) -> None:
        self._window.append(now_ms)
        while now_ms - self._window[0] >= self._config.failure_interval_ms:
            self._window.popleft()

    def can_restart(self) -> bool:
        return len(self._window) <= self._config.max_failure_rate

    def backoff_ms(self) -> int:
        return self._config.delay_between_attempts_ms

    def describe(self) -> str:
        return (
            f"failure-rate: {len(self._window)} of at most {self._config.max_failure_rate} "
            f"failures in the last {_fmt(self._config.failure_interval_ms)}, "
            f"{_fmt(self._config.delay_between_attempts_ms)} between restarts"
        )


class ExponentialDelayRestartBackoff(RestartBackoff):
    """Waits ``initial``, then ``initial * multiplier``... capped at ``max_backoff_ms``.

    Each wait is spread by ``± jitter_factor`` of itself (never above the cap). When
    the job has run for ``reset_backoff_threshold_ms`` since its last restart, the next
    failure starts over from the initial backoff and the attempt count. At most
    ``attempts_before_reset_backoff`` restarts are allowed between resets.
    ``rng`` makes the jitter reproducible in tests.
    """

    def __init__(
        self,
        config: ExponentialDelayRestartStrategyConfiguration,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._rng = rng if rng is not None else random.Random()
        self._attempts = 0
        self._base_backoff = 0.0
        self._backoff = 0
        self._restarted_at_ms = 0

    def notify_failure(self, now_ms: int) -> None:
        config = self._config
        if self._attempts and now_ms - self._restarted_at_ms >= config.reset_backoff_threshold_ms:
            self._attempts = 0
        if self._attempts == 0:
            self._base_backoff = float(config.initial_backoff_ms)
        else:
            self._base_backoff = min(
                self._base_backoff * config.backoff_multiplier, float(config.max_backoff_ms)
            )
        self._attempts += 1
        spread = self._base_backoff * config.jitter_factor * self._rng.uniform(-1.0, 1.0)
        self._backoff = max(0, min(round(self._base_backoff + spread), config.max_backoff_ms))
        self._restarted_at_ms = now_ms + self._backoff

    def can_restart(self) -> bool:
        return self._attempts <= self._config.attempts_before_reset_backoff

    def backoff_ms(self) -> int:
        return self._backoff

    def describe(self) -> str:
        return (
            f"exponential-delay: attempt {self._attempts}, next wait {_fmt(self._backoff)} "
            f"(initial {_fmt(self._config.initial_backoff_ms)}, "
            f"max {_fmt(self._config.max_backoff_ms)}, x{self._config.backoff_multiplier})"
        )


def restart_backoff_from(
    configuration: Configuration,
    explicit: RestartStrategyConfiguration | None = None,
    checkpointing_enabled: bool = False,
    *,
    rng: random.Random | None = None,
) -> RestartBackoff:
    """Build the job's :class:`RestartBackoff`.

    ``explicit`` (``env.set_restart_strategy(...)``) wins unless it is ``None`` or
    ``fall_back_restart()``; then ``restart-strategy.*`` in ``configuration``; then
    Flink's default (exponential-delay if ``checkpointing_enabled``, else none).
    Raises :class:`~flinklet.errors.ConfigurationError` for invalid settings.
    """
    strategy = explicit
    if strategy is None or isinstance(strategy, FallbackRestartStrategyConfiguration):
        strategy = restart_strategy_from_configuration(configuration, checkpointing_enabled)
    if isinstance(strategy, FixedDelayRestartStrategyConfiguration):
        return FixedDelayRestartBackoff(strategy)
    if isinstance(strategy, FailureRateRestartStrategyConfiguration):
        return FailureRateRestartBackoff(strategy)
    if isinstance(strategy, ExponentialDelayRestartStrategyConfiguration):
        return ExponentialDelayRestartBackoff(strategy, rng)
    return NoRestartBackoff()
