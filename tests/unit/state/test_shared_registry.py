"""Reference counting of files shared between incremental checkpoints."""

from __future__ import annotations

import threading

import pytest

from flinklet._private.state.shared_registry import SharedStateRegistry
from flinklet.errors import CheckpointError


def test_a_file_is_released_when_the_last_checkpoint_using_it_goes() -> None:
    registry = SharedStateRegistry()
    registry.register(1, ["a", "b"])
    registry.register(2, ["b", "c"])
    registry.register(3, ["b", "c", "d"])
    assert registry.reference_count("b") == 3
    assert registry.files() == {"a", "b", "c", "d"}
    assert registry.release(1) == ["a"]
    assert registry.release(2) == []
    assert registry.reference_count("c") == 1
    assert registry.release(3) == ["b", "c", "d"]
    assert registry.files() == set()
    assert registry.checkpoints() == []


def test_releasing_out_of_order_keeps_files_needed_by_retained_checkpoints() -> None:
    registry = SharedStateRegistry()
    registry.register(1, ["a", "b"])
    registry.register(2, ["a", "c"])
    assert registry.release(2) == ["c"]  # e.g. a savepoint-aborted or discarded checkpoint
    assert registry.files_of(1) == {"a", "b"}
    assert registry.release(1) == ["a", "b"]


def test_duplicates_within_a_checkpoint_count_once() -> None:
    registry = SharedStateRegistry()
    registry.register(1, ["a", "a"])
    registry.register(2, ["a"])
    assert registry.reference_count("a") == 2
    assert registry.release(1) == []
    assert registry.release(2) == ["a"]


def test_registering_a_checkpoint_twice_is_an_error() -> None:
    registry = SharedStateRegistry()
    registry.register(7, ["a"])
    with pytest.raises(CheckpointError, match="already registered"):
        registry.register(7, ["b"])
    assert registry.files() == {"a"}


def test_releasing_an_unknown_checkpoint_releases_nothing() -> None:
    registry = SharedStateRegistry()
    registry.register(1, ["a"])
    assert registry.release(99) == []
    assert registry.release(1) == ["a"]
    assert registry.release(1) == []


def test_rebuilt_from_retained_checkpoints() -> None:
    registry = SharedStateRegistry.from_checkpoints({5: ["x", "y"], 4: ["x"]})
    assert registry.checkpoints() == [4, 5]
    assert registry.reference_count("x") == 2
    assert registry.release(4) == []
    assert registry.release(5) == ["x", "y"]


def test_concurrent_registration_and_release_keep_counts_exact() -> None:
    registry = SharedStateRegistry()
    released: list[list[str]] = []

    def work(offset: int) -> None:
        for i in range(200):
            checkpoint = offset * 1000 + i
            registry.register(checkpoint, ["shared", f"own-{checkpoint}"])
            released.append(registry.release(checkpoint))

    registry.register(-1, ["shared"])
    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(name for names in released for name in names) == sorted(
        f"own-{n * 1000 + i}" for n in range(4) for i in range(200)
    )
    assert registry.files() == {"shared"}
    assert registry.release(-1) == ["shared"]
