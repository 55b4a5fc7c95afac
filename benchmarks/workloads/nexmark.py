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

An outcome's checksum adds up one or two integer fields of each result (named in each
sink), so a wrong, missing or duplicated result changes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from benchmarks.nexmark import HOT_STATES, Auction, Bid, Event, Person, category_of, generate
from benchmarks.registry import Outcome, Workload, register
from benchmarks.workloads.tally import Tally, job_environment
from flinklet.common import Time, Types
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    AggregateFunction,
    DataStream,
    KeyedCoProcessFunction,
    ListStateDescriptor,
    RuntimeContext,
    ValueStateDescriptor,
    WindowFunction,
)
from flinklet.datastream.window import (
    SlidingEventTimeWindows,
    TimeWindow,
    TumblingEventTimeWindows,
)

# the windowed queries (q4, q5, q7) run over fewer events: each engine run stays within a
# few seconds, so that the full suite keeps to its time budget
FULL_RECORDS = 1_000_000
QUICK_RECORDS = 100_000
TARGET_STATELESS = 2.0
TARGET_STATEFUL = 3.0
WINDOW_MS = 10_000
SLIDE_MS = 2_000
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


def _register(
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


_register(
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


_register(
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


_register(
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


_register(
    "q3",
    "nexmark join: persons in OR/ID/CA x their category-10 auctions (KeyedCoProcessFunction)",
    q3_engine,
    q3_baseline,
)


# ------------------------------------------------ q4 average closing price per category


def auction_of(bid: Bid) -> int:
    return bid.auction


def higher_bid(a: Bid, b: Bid) -> Bid:
    return b if b.price > a.price else a


def category_price(bid: Bid) -> tuple[int, int]:
    return (category_of(bid.auction), bid.price)


def first(record: tuple[Any, ...]) -> Any:
    return record[0]


class Average(AggregateFunction):
    """(sum, count) of the prices; the result is the integer mean."""

    def create_accumulator(self) -> tuple[int, int]:
        return (0, 0)

    def add(self, value: tuple[int, int], accumulator: tuple[int, int]) -> tuple[int, int]:
        return (accumulator[0] + value[1], accumulator[1] + 1)

    def get_result(self, accumulator: tuple[int, int]) -> int:
        return accumulator[0] // accumulator[1]

    def merge(self, acc_a: tuple[int, int], acc_b: tuple[int, int]) -> tuple[int, int]:
        return (acc_a[0] + acc_b[0], acc_a[1] + acc_b[1])


class WithWindowEnd(WindowFunction):
    """``(key, window end, result)`` for the single pre-aggregated result of a window."""

    def apply(self, key: Any, window: TimeWindow, inputs: Iterable[Any]) -> Iterable[Any]:
        for result in inputs:
            yield (key, window.end, result)


def q4_engine(events: list[Event]) -> Outcome:
    sums = Sums()
    env, stream = events_stream(events, with_event_time=True)
    window = TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS))
    (
        stream.filter(is_bid)
        .key_by(auction_of)
        .window(window)
        .reduce(higher_bid)
        .map(category_price)
        .key_by(first)
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .aggregate(Average(), window_function=WithWindowEnd())
        .add_sink(sums.add_last)
    )
    env.execute("bench: nexmark q4")
    return sums.outcome()


def q4_baseline(events: list[Event]) -> Outcome:
    closing: dict[tuple[int, int], int] = {}  # (window start, auction) -> highest price
    get = closing.get
    for e in events:
        if is_bid(e):
            key = (window_start(e.date_time), e.auction)
            best = get(key)
            if best is None or e.price > best:
                closing[key] = e.price
    averages: dict[tuple[int, int], list[int]] = {}  # (window, category) -> [sum, count]
    for (start, auction), price in closing.items():
        acc = averages.setdefault((start, category_of(auction)), [0, 0])
        acc[0] += price
        acc[1] += 1
    sums = Sums()
    add = sums.add_last
    for (start, category), (total, count) in averages.items():
        add((category, start + WINDOW_MS, total // count))
    return sums.outcome()


_register(
    "q4",
    "nexmark avg closing price per category: max bid per auction, then mean per category "
    "(two 10 s tumbling windows)",
    q4_engine,
    q4_baseline,
    records=(300_000, 50_000),
)


# -------------------------------------------------------------------- q5 hot items


class CountBids(AggregateFunction):
    def create_accumulator(self) -> int:
        return 0

    def add(self, value: Bid, accumulator: int) -> int:
        return accumulator + 1

    def get_result(self, accumulator: int) -> int:
        return accumulator

    def merge(self, acc_a: int, acc_b: int) -> int:
        return acc_a + acc_b


class EndAuctionCount(WindowFunction):
    """``(window end, auction, bids)``."""

    def apply(self, key: int, window: TimeWindow, inputs: Iterable[int]) -> Iterable[Any]:
        for count in inputs:
            yield (window.end, key, count)


def hotter(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    """More bids wins; on a tie, the lower auction id."""
    if b[2] > a[2] or (b[2] == a[2] and b[1] < a[1]):
        return b
    return a


def q5_engine(events: list[Event]) -> Outcome:
    sums = Sums()
    env, stream = events_stream(events, with_event_time=True)
    sliding = SlidingEventTimeWindows.of(Time.milliseconds(WINDOW_MS), Time.milliseconds(SLIDE_MS))
    (
        stream.filter(is_bid)
        .key_by(auction_of)
        .window(sliding)
        .aggregate(CountBids(), window_function=EndAuctionCount())
        .key_by(first)
        # a sliding window's result carries its max timestamp: the tumbling window of
        # one slide that contains it holds exactly the results of windows with that end
        .window(TumblingEventTimeWindows.of(Time.milliseconds(SLIDE_MS)))
        .reduce(hotter)
        .add_sink(sums.add_auction_count)
    )
    env.execute("bench: nexmark q5")
    return sums.outcome()


def q5_baseline(events: list[Event]) -> Outcome:
    counts: dict[tuple[int, int], int] = {}  # (window end, auction) -> bids
    get = counts.get
    per_record = WINDOW_MS // SLIDE_MS
    for e in events:
        if is_bid(e):
            last_start = window_start(e.date_time, SLIDE_MS)
            for k in range(per_record):
                key = (last_start - k * SLIDE_MS + WINDOW_MS, e.auction)
                counts[key] = get(key, 0) + 1
    hottest: dict[int, tuple[int, int, int]] = {}
    for (end, auction), count in counts.items():
        candidate = (end, auction, count)
        best = hottest.get(end)
        hottest[end] = candidate if best is None else hotter(best, candidate)
    sums = Sums()
    for result in hottest.values():
        sums.add_auction_count(result)
    return sums.outcome()


_register(
    "q5",
    "nexmark hot items: bids per auction over 10 s windows sliding by 2 s, then the "
    "auction with the most bids per window",
    q5_engine,
    q5_baseline,
    records=(100_000, 20_000),
)


# ------------------------------------------------------------------ q7 highest bid


def q7_engine(events: list[Event]) -> Outcome:
    sums = Sums()
    env, stream = events_stream(events, with_event_time=True)
    (
        stream.filter(is_bid)
        .window_all(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .reduce(higher_bid)
        .add_sink(sums.add_bid)
    )
    env.execute("bench: nexmark q7")
    return sums.outcome()


def q7_baseline(events: list[Event]) -> Outcome:
    highest: dict[int, Bid] = {}
    get = highest.get
    for e in events:
        if is_bid(e):
            start = window_start(e.date_time)
            best = get(start)
            highest[start] = e if best is None else higher_bid(best, e)
    sums = Sums()
    for bid in highest.values():
        sums.add_bid(bid)
    return sums.outcome()


_register(
    "q7",
    "nexmark highest bid per 10 s tumbling window (window_all + reduce)",
    q7_engine,
    q7_baseline,
    records=(500_000, 50_000),
)


# ------------------------------------------------------------------ q8 new users


def new_user(p: Person, a: Auction) -> tuple[int, str, int]:
    return (p.id, p.name, a.id)


def q8_engine(events: list[Event]) -> Outcome:
    sums = Sums()
    env, stream = events_stream(events, with_event_time=True)
    persons = stream.filter(is_person)
    auctions = stream.filter(is_auction)
    (
        persons.join(auctions)
        .where(person_id)
        .equal_to(seller_of)
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .apply(new_user)
        .add_sink(sums.add_first_last)
    )
    env.execute("bench: nexmark q8")
    return sums.outcome()


def q8_baseline(events: list[Event]) -> Outcome:
    persons: dict[tuple[int, int], list[Person]] = {}  # (window, person id) -> persons
    auctions: dict[tuple[int, int], list[Auction]] = {}  # (window, seller) -> auctions
    for e in events:
        if is_person(e):
            persons.setdefault((window_start(e.date_time), e.id), []).append(e)
        elif is_auction(e):
            auctions.setdefault((window_start(e.date_time), e.seller), []).append(e)
    sums = Sums()
    add = sums.add_first_last
    for key, ps in persons.items():
        for a in auctions.get(key, ()):
            for p in ps:
                add(new_user(p, a))
    return sums.outcome()


_register(
    "q8",
    "nexmark new users: persons x the auctions they opened in the same 10 s tumbling "
    "window (window join)",
    q8_engine,
    q8_baseline,
)
