"""PyFlink: ``(i % 1000, i)`` -> ``key_by`` -> ``sum(1)``, every running sum to the sink."""

from functools import partial

from benchmarks.inputs import keyed_pairs
from benchmarks.peer_programs.pyflink_common import execute
from benchmarks.peer_programs.timing import main
from pyflink.common import Types

PAIR = Types.TUPLE([Types.INT(), Types.LONG()])


def key_of(record: tuple[int, int]) -> int:
    return record[0]


def second(record: tuple[int, int]) -> int:
    return record[1]


def run(pairs: list[tuple[int, int]]) -> tuple[int, int]:
    return execute(
        lambda env, tally: (
            env.from_collection(pairs, type_info=PAIR)
            .key_by(key_of, key_type=Types.INT())
            .sum(1)
            .filter(tally(second))
            .print()
        )
    )


main(partial(keyed_pairs, keys=1000), run)
