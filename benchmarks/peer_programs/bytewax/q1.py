"""Bytewax: nexmark q1, every bid with its price in euros (sum of prices)."""

import bytewax.operators as op
from benchmarks.nexmark import Bid, Event, generate
from benchmarks.peer_programs.bytewax_common import BATCH, execute
from benchmarks.peer_programs.timing import main
from bytewax.testing import TestingSource


def is_bid(e: Event) -> bool:
    return type(e) is Bid


def to_euros(bid: Bid) -> Bid:
    return Bid(bid.auction, bid.bidder, bid.price * 89 // 100, bid.channel, bid.date_time)


def price(bid: Bid) -> int:
    return bid.price


def run(events: list[Event]) -> tuple[int, int]:
    def build(flow, sink):  # type: ignore[no-untyped-def]
        stream = op.input("events", flow, TestingSource(events, BATCH))
        bids = op.filter("bids", stream, is_bid)
        op.output("tally", op.map("euros", bids, to_euros), sink(price))

    return execute(build)


main(generate, run)
