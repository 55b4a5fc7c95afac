"""PyFlink: nexmark q2, ``(auction, price)`` of the bids with auction % 123 == 0."""

from benchmarks.nexmark import Bid, Event, generate
from benchmarks.peer_programs.pyflink_common import execute
from benchmarks.peer_programs.timing import main


def is_selected_bid(e: Event) -> bool:
    return type(e) is Bid and e.auction % 123 == 0


def auction_price(bid: Bid) -> tuple[int, int]:
    return (bid.auction, bid.price)


def first_plus_last(record: tuple[int, int]) -> int:
    return record[0] + record[-1]


def run(events: list[Event]) -> tuple[int, int]:
    return execute(
        lambda env, tally: (
            env.from_collection(events)
            .filter(is_selected_bid)
            .map(auction_price)
            .filter(tally(first_plus_last))
            .print()
        )
    )


main(generate, run)
