"""The windowed Nexmark queries: q4, q5, q7 and q8 (see ``benchmarks.workloads.nexmark``).

They assign event time from ``date_time`` with monotonous watermarks. q4, q5 and q7 run
over fewer events than the other queries, so that each engine run stays within a few
seconds and the full suite keeps to its time budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from benchmarks.nexmark import Auction, Bid, Event, Person, category_of
from benchmarks.registry import Outcome
from benchmarks.workloads.nexmark import (
    WINDOW_MS,
    Sums,
    events_stream,
    is_auction,
    is_bid,
    is_person,
    person_id,
    register_query,
    seller_of,
    window_start,
)
from flinklet.common import Time
from flinklet.datastream import AggregateFunction, WindowFunction
from flinklet.datastream.window import (
    SlidingEventTimeWindows,
    TimeWindow,
    TumblingEventTimeWindows,
)

SLIDE_MS = 2_000  # q5's windows: WINDOW_MS long, every SLIDE_MS


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


register_query(
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


register_query(
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


register_query(
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


register_query(
    "q8",
    "nexmark new users: persons x the auctions they opened in the same 10 s tumbling "
    "window (window join)",
    q8_engine,
    q8_baseline,
)
