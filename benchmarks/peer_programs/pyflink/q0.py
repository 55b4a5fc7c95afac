"""PyFlink: nexmark q0, every event to the sink (sum of date_time)."""

from benchmarks.nexmark import Event, generate
from benchmarks.peer_programs.pyflink_common import execute
from benchmarks.peer_programs.timing import main


def date_time(e: Event) -> int:
    return e.date_time


def run(events: list[Event]) -> tuple[int, int]:
    return execute(lambda env, tally: env.from_collection(events).filter(tally(date_time)).print())


main(generate, run)
