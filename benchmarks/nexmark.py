"""A deterministic Nexmark-style event generator: persons, auctions and bids of an
online auction, each with an event timestamp.

Nexmark (the benchmark of Beam and Flink) models an auction site as one stream of three
event kinds. Event ``i`` here is a pure function of ``i`` (no random state), so the
engine, the plain-loop baseline and a peer in another interpreter rebuild the very same
events from the event count alone. This module imports nothing of Flinklet: peers
import it from their own virtualenvs.

Out of every 50 events, 1 is a new person, 3 are new auctions and 46 are bids (Nexmark's
proportions). Event ``i`` happens at ``BASE_TIME_MS + i`` (one event per millisecond of
event time), so a 10 s window holds 10,000 events and timestamps never go backwards.
Sellers and bidders are persons that exist already (half the sellers recent ones), and
bids go to auctions that exist already, half of them to one of the last few (hot) ones.

One simplification against Nexmark: an auction's category is a function of its id
(``category_of``), so q4 can group bids by category without joining them to auctions
first (the joins are measured by q3 and q8).

    >>> events = generate(100)
    >>> [type(e).__name__ for e in events[:5]]
    ['Person', 'Auction', 'Auction', 'Auction', 'Bid']
    >>> event(4) == events[4]
    True
"""

from __future__ import annotations

from typing import NamedTuple

from benchmarks.inputs import BASE_TIME_MS, mix

__all__ = [
    "BASE_TIME_MS",
    "CATEGORIES",
    "HOT_STATES",
    "Auction",
    "Bid",
    "Event",
    "Person",
    "category_of",
    "event",
    "generate",
    "timestamp_of",
]

EVENTS_PER_EPOCH = 50
PERSONS_PER_EPOCH = 1
AUCTIONS_PER_EPOCH = 3
CATEGORIES = 5
FIRST_CATEGORY = 10
HOT_AUCTIONS = 4  # a hot bid goes to one of the newest HOT_AUCTIONS auctions
ACTIVE_AUCTIONS = 1_000  # a cold bid goes to one of the newest ACTIVE_AUCTIONS auctions
RECENT_SELLERS = 20

_FIRST_NAMES = ("Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah")
_LAST_NAMES = ("Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones")
_CITIES = ("Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond")
_STATES = ("AZ", "CA", "ID", "OR", "WA", "WY")
HOT_STATES = frozenset(("OR", "ID", "CA"))  # q3's filter
_CHANNELS = ("Google", "Facebook", "Baidu", "Apple")


class Person(NamedTuple):
    id: int
    name: str
    email: str
    city: str
    state: str
    date_time: int


class Auction(NamedTuple):
    id: int
    item_name: str
    initial_bid: int
    reserve: int
    date_time: int
    expires: int
    seller: int
    category: int


class Bid(NamedTuple):
    auction: int
    bidder: int
    price: int  # in cents
    channel: str
    date_time: int


Event = Person | Auction | Bid


def timestamp_of(i: int) -> int:
    """The event time of event ``i``, in epoch milliseconds."""
    return BASE_TIME_MS + i


def category_of(auction_id: int) -> int:
    """The category of an auction: a function of its id (see the module docstring)."""
    return FIRST_CATEGORY + mix(auction_id) % CATEGORIES


def _seller(epoch: int, h: int) -> int:
    """A person that exists already: half the time one of the newest RECENT_SELLERS (so
    that q8 finds persons and their auctions in the same window), else any."""
    if (h >> 24) & 1:
        return epoch - (h >> 4) % min(epoch + 1, RECENT_SELLERS)
    return (h >> 4) % (epoch + 1)


def event(i: int) -> Event:
    """Event ``i`` of the stream."""
    epoch, offset = divmod(i, EVENTS_PER_EPOCH)
    h = mix(i)
    ts = BASE_TIME_MS + i
    if offset < PERSONS_PER_EPOCH:
        first = _FIRST_NAMES[h % len(_FIRST_NAMES)]
        last = _LAST_NAMES[(h >> 4) % len(_LAST_NAMES)]
        return Person(
            epoch,
            f"{first} {last}",
            f"{first.lower()}.{last.lower()}@example.com",
            _CITIES[(h >> 8) % len(_CITIES)],
            _STATES[(h >> 12) % len(_STATES)],
            ts,
        )
    if offset < PERSONS_PER_EPOCH + AUCTIONS_PER_EPOCH:
        auction_id = epoch * AUCTIONS_PER_EPOCH + offset - PERSONS_PER_EPOCH
        initial = 100 + h % 10_000
        return Auction(
            auction_id,
            f"item-{auction_id}",
            initial,
            initial + (h >> 8) % 5_000,
            ts,
            ts + 2_000 + (h >> 12) % 18_000,
            _seller(epoch, h),
            category_of(auction_id),
        )
    newest = epoch * AUCTIONS_PER_EPOCH + AUCTIONS_PER_EPOCH - 1  # exists already
    if h % 2 == 0:
        auction = newest - (h >> 1) % HOT_AUCTIONS
    else:
        auction = newest - (h >> 1) % ACTIVE_AUCTIONS
    return Bid(
        max(0, auction),
        (h >> 12) % (epoch + 1),
        100 + (h >> 4) % 100_000,
        _CHANNELS[(h >> 20) % len(_CHANNELS)],
        ts,
    )


def generate(n: int) -> list[Event]:
    """Events ``0 .. n-1``."""
    return [event(i) for i in range(n)]
