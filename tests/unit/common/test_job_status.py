"""JobStatus terminal states, JobID and JobExecutionResult."""

import pytest

from flinklet.common.job_execution_result import JobExecutionResult
from flinklet.common.job_id import JobID
from flinklet.common.job_status import JobStatus
from flinklet.common.time import TimeUnit
from flinklet.errors import ApiUsageError

_ID = "0123456789abcdef0123456789abcdef"


def test_globally_terminal_states() -> None:
    assert {s for s in JobStatus if s.is_globally_terminal_state()} == {
        JobStatus.FINISHED,
        JobStatus.FAILED,
        JobStatus.CANCELED,
    }


def test_suspended_is_terminal_but_not_globally() -> None:
    assert JobStatus.SUSPENDED.is_terminal_state()
    assert not JobStatus.SUSPENDED.is_globally_terminal_state()


def test_running_is_not_terminal() -> None:
    assert not JobStatus.RUNNING.is_terminal_state()


def test_status_values_are_flink_names() -> None:
    assert JobStatus("RECONCILING") is JobStatus.RECONCILING


def test_generated_job_ids_are_32_hex_chars() -> None:
    job_id = JobID.generate()
    assert len(job_id) == 32 and int(job_id, 16) >= 0


def test_job_id_is_lower_cased_string() -> None:
    assert JobID(_ID.upper()) == _ID


def test_job_id_rejects_wrong_length() -> None:
    with pytest.raises(ApiUsageError, match="32 hex characters"):
        JobID("abc")


def test_result_reports_id_runtime_and_accumulators() -> None:
    result = JobExecutionResult(_ID, 2_500, {"count": 7})
    assert (
        result.get_job_id(),
        result.get_net_runtime(),
        result.get_accumulator_result("count"),
    ) == (
        _ID,
        2_500,
        7,
    )


def test_result_job_id_is_a_job_id() -> None:
    assert isinstance(JobExecutionResult(_ID, 0).get_job_id(), JobID)


@pytest.mark.parametrize(
    ("unit", "value"), [(TimeUnit.SECONDS, 2), ("seconds", 2), ("MILLISECONDS", 2_500)]
)
def test_net_runtime_in_other_units(unit: TimeUnit | str, value: int) -> None:
    assert JobExecutionResult(_ID, 2_500).get_net_runtime(unit) == value


def test_net_runtime_unknown_unit() -> None:
    with pytest.raises(ApiUsageError, match="unknown time unit 'fortnights'"):
        JobExecutionResult(_ID, 1).get_net_runtime("fortnights")


def test_missing_accumulator_is_none() -> None:
    assert JobExecutionResult(_ID, 1).get_accumulator_result("nope") is None


def test_accumulators_cannot_be_changed_through_the_result() -> None:
    accumulators = {"a": 1}
    result = JobExecutionResult(_ID, 1, accumulators)
    accumulators["a"] = 2
    result.get_all_accumulator_results()["a"] = 3
    assert result.get_accumulator_result("a") == 1


def test_result_is_its_own_execution_result() -> None:
    result = JobExecutionResult(_ID, 1)
    assert result.is_job_execution_result() and result.get_job_execution_result() is result


def test_result_rejects_negative_runtime() -> None:
    with pytest.raises(ApiUsageError, match="negative"):
        JobExecutionResult(_ID, -1)
