"""Nexmark queries over the deterministic auction stream of ``benchmarks.nexmark``.

Every query reads the same prebuilt list of events (persons, auctions and bids, one per
millisecond of event time) with ``from_collection`` and writes into a checksumming sink.
The windowed queries (q4, q5, q7, q8) assign event time from ``date_time`` with
monotonous watermarks; q0 to q3 use no time, like their baselines (and the peers). The
baseline is the plain loop computing the same result; windowed queries compute the
same windows (aligned to the epoch, as Flink's) in dicts. Event timestamps never go
backwards, so no record is ever late and the windows' contents do not depend on when
watermarks happen to fire: the results are deterministic.

- ``q0`` pass-through: every event to the sink;
- ``q1`` currency conversion: every bid with its price in euros;
- ``q2`` selection: the bids of every 123rd auction, as ``(auction, price)``;
- ``q3`` local item suggestion: sellers in OR, ID or CA joined with their auctions of
  category 10, a ``KeyedCoProcessFunction`` over ``connect(...).key_by(...)`` keeping
  the person in ``ValueState`` and early auctions in ``ListState``;
- ``q4`` average closing price per category: the highest bid per auction and 10 s
  tumbling window, then the average of those per category and window;
- ``q5`` hot items: bids per auction over sliding windows (10 s every 2 s), then the
  auction with the most bids per window;
- ``q7`` highest bid: the highest bid of each 10 s tumbling window (``window_all``);
- ``q8`` new users: persons and the auctions they opened in the same 10 s tumbling window,
  a window join.

q0 to q3 are here, the windowed queries in ``benchmarks.workloads.nexmark_windows``.

An outcome's checksum adds up one or two integer fields of each result (named in each
sink), so a wrong, missing or duplicated result changes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from benchmarks.nexmark import HOT_STATES, Auction, Bid, Event, Person, generate
from benchmarks.registry import Outcome, Workload, register
from benchmarks.workloads.tally import Tally, job_environment
from flinklet.common import Types
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    DataStream,
    KeyedCoProcessFunction,
    ListStateDescriptor,
    RuntimeContext,
    ValueStateDescriptor,
)

FULL_RECORDS = 1_000_000
QUICK_RECORDS = 100_000
TARGET_STATELESS = 2.0
TARGET_STATEFUL = 3.0
WINDOW_MS = 10_000  # the windowed queries' tumbling windows
Q2_MODULUS = 123
Q3_CATEGORY = 10
EURO_PER_DOLLAR_PERCENT = 89  # q1: price * 89 // 100


class Sums(Tally):
    """The sinks of the queries: each counts its records and adds up the named fields."""

    __slots__ = ()

    def add_time(self, e: Event) -> None:
        self.count += 1
        self.total += e.date_time

    def add_price(self, bid: Bid) -> None:
        self.count += 1
        self.total += bid.price

    def add_last(self, record: tuple[Any, ...]) -> None:
        self.count += 1
        self.total += record[-1]

    def add_first_last(self, record: tuple[Any, ...]) -> None:
        self.count += 1
        self.total += record[0] + record[-1]

    def add_auction_count(self, record: tuple[int, int, int]) -> None:
        self.count += 1
        self.total += record[1] + record[2]

    def add_bid(self, bid: Bid) -> None:
        self.count += 1
        self.total += bid.auction + bid.price


def is_person(e: Event) -> bool:
    return type(e) is Person


def is_auction(e: Event) -> bool:
    return type(e) is Auction


def is_bid(e: Event) -> bool:
    return type(e) is Bid


def event_time(e: Event, _record_ts: int | None) -> int:
    return e.date_time


def window_start(ts: int, size: int = WINDOW_MS) -> int:
    """Flink's ``TimeWindow.get_window_start_with_offset(ts, 0, size)``."""
    return ts - ts % size


def events_stream(
    events: list[Event], with_event_time: bool = False
) -> tuple[Any, DataStream[Event]]:
    env = job_environment()
    stream = env.from_collection(events)
    if not with_event_time:
        return env, stream
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(event_time)
    return env, stream.assign_timestamps_and_watermarks(strategy)


def register_query(
    name: str,
    description: str,
    engine: Any,
    baseline: Any,
    target: float = TARGET_STATEFUL,
    records: tuple[int, int] = (FULL_RECORDS, QUICK_RECORDS),
) -> None:
    register(
        Workload(
            name=name,
            family="nexmark",
            description=description,
            prepare=generate,
            engine=engine,
            baseline=baseline,
            target_ratio=target,
            full_records=records[0],
            quick_records=records[1],
        )
    )


# ------------------------------------------------------------------- q0 pass-through


def q0_engine(events: list[Event]) -> Outcome:
    sums = Sums()
    env, stream = events_stream(events)
    stream.add_sink(sums.add_time)
    env.execute("bench: nexmark q0")
    return sums.outcome()


def q0_baseline(events: list[Event]) -> Outcome:
    sums = Sums()
    add = sums.add_time
    for e in events:
        add(e)
    return sums.outcome()


register_query(
    "q0",
    "nexmark pass-through: events -> sink (sum of date_time)",
    q0_engine,
    q0_baseline,
    TARGET_STATELESS,
)


# ------------------------------------------------------------- q1 currency conversion


def to_euros(bid: Bid) -> Bid:
    return Bid(
        bid.auction,
        bid.bidder,
        bid.price * EURO_PER_DOLLAR_PERCENT // 100,
        bid.channel,
        bid.date_time,
    )


def q1_engine(events: list[Event]) -> Outcome:
    sums = Sums()
    env, stream = events_stream(events)
    stream.filter(is_bid).map(to_euros).add_sink(sums.add_price)
    env.execute("bench: nexmark q1")
    return sums.outcome()


def q1_baseline(events: list[Event]) -> Outcome:
    sums = Sums()
    add = sums.add_price
    for e in events:
        if is_bid(e):
            add(to_euros(e))
    return sums.outcome()


register_query(
    "q1",
    "nexmark currency map: bids -> price in euros (sum of prices)",
    q1_engine,
    q1_baseline,
    TARGET_STATELESS,
)


# --------------------------------------------------------------------- q2 selection


def is_selected_bid(e: Event) -> bool:
    return type(e) is Bid and e.auction % Q2_MODULUS == 0


def auction_price(bid: Bid) -> tuple[int, int]:
    return (bid.auction, bid.price)


def q2_engine(events: list[Event]) -> Outcome:
    sums = Sums()
    env, stream = events_stream(events)
    stream.filter(is_selected_bid).map(auction_price).add_sink(sums.add_first_last)
    env.execute("bench: nexmark q2")
    return sums.outcome()


def q2_baseline(events: list[Event]) -> Outcome:
    sums = Sums()
    add = sums.add_first_last
    for e in events:
        if is_selected_bid(e):
            add(auction_price(e))
    return sums.outcome()


register_query(
    "q2",
    f"nexmark filter: bids with auction % {Q2_MODULUS} == 0 -> (auction, price)",
    q2_engine,
    q2_baseline,
    TARGET_STATELESS,
)


# ---------------------------------------------------------- q3 local item suggestion


def is_local_seller(e: Event) -> bool:
    return type(e) is Person and e.state in HOT_STATES


def is_q3_auction(e: Event) -> bool:
    return type(e) is Auction and e.category == Q3_CATEGORY


def person_id(p: Person) -> int:
    return p.id


def seller_of(a: Auction) -> int:
    return a.seller


class JoinSellers(KeyedCoProcessFunction):
    """Input 1: persons, input 2: auctions, both keyed by the person's id. A person
    arrives before its auctions in event order, but a two-input operator may see its
    inputs in either order, so auctions that come first wait in list state."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.person = runtime_context.get_state(
            ValueStateDescriptor("person", Types.PICKLED_BYTE_ARRAY())
        )
        self.waiting = runtime_context.get_list_state(
            ListStateDescriptor("waiting", Types.PICKLED_BYTE_ARRAY())
        )

    def process_element1(self, person: Person, ctx: Any) -> Iterable[tuple[str, str, str, int]]:
        self.person.update(person)
        waiting = list(self.waiting.get() or ())
        if waiting:
            self.waiting.clear()
            for a in waiting:
                yield (person.name, person.city, person.state, a.id)

    def process_element2(self, auction: Auction, ctx: Any) -> Iterable[tuple[str, str, str, int]]:
        person = self.person.value()
        if person is None:
            self.waiting.add(auction)
        else:
            yield (person.name, person.city, person.state, auction.id)


def q3_engine(events: list[Event]) -> Outcome:
    sums = Sums()
    env, stream = events_stream(events)
    persons = stream.filter(is_local_seller)
    auctions = stream.filter(is_q3_auction)
    (
        persons.connect(auctions)
        .key_by(person_id, seller_of)
        .process(JoinSellers())
        .add_sink(sums.add_last)
    )
    env.execute("bench: nexmark q3")
    return sums.outcome()


def q3_baseline(events: list[Event]) -> Outcome:
    sums = Sums()
    add = sums.add_last
    persons: dict[int, Person] = {}
    waiting: dict[int, list[Auction]] = {}
    for e in events:
        if is_local_seller(e):
            persons[e.id] = e
            for a in waiting.pop(e.id, ()):
                add((e.name, e.city, e.state, a.id))
        elif is_q3_auction(e):
            p = persons.get(e.seller)
            if p is None:
                waiting.setdefault(e.seller, []).append(e)
            else:
                add((p.name, p.city, p.state, e.id))
    return sums.outcome()


register_query(
    "q3",
    "nexmark join: persons in OR/ID/CA x their category-10 auctions (KeyedCoProcessFunction)",
    q3_engine,
    q3_baseline,
)
