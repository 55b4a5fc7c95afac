"""PyFlink: nexmark q1, every bid with its price in euros (sum of prices)."""

from benchmarks.nexmark import Bid, Event, generate
from benchmarks.peer_programs.pyflink_common import execute
from benchmarks.peer_programs.timing import main


def is_bid(e: Event) -> bool:
    return type(e) is Bid


def to_euros(bid: Bid) -> Bid:
    return Bid(bid.auction, bid.bidder, bid.price * 89 // 100, bid.channel, bid.date_time)


def price(bid: Bid) -> int:
    return bid.price


def run(events: list[Event]) -> tuple[int, int]:
    return execute(
        lambda env, tally: (
            env.from_collection(events).filter(is_bid).map(to_euros).filter(tally(price)).print()
        )
    )


main(generate, run)
