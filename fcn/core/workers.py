"""Threads beside the model: how many, reading ahead in order, and pairing outputs with their inputs.

Pillow decodes and encodes without holding the GIL, so a few threads keep the model fed while
TensorFlow or ONNX Runtime uses the cores for the network itself.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
Context = TypeVar("Context")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def io_workers(limit: int = 4) -> int:
    """The one rule for reader/writer threads: one per core, at least 2, at most ``limit``."""
    return max(2, min(limit, available_cores()))


def read_ahead(
    pool: ThreadPoolExecutor, read: Callable[[Item], Result], items: Iterable[Item], depth: int
) -> Iterator[tuple[Item, Future]]:
    """Yield ``(item, future of read(item))`` in order, keeping ``depth`` reads in flight."""
    in_flight: deque = deque()
    remaining = iter(items)
    for item in remaining:
        in_flight.append((item, pool.submit(read, item)))
        if len(in_flight) >= depth:
            break
    while in_flight:
        yield in_flight.popleft()
        item = next(remaining, None)
        if item is not None:
            in_flight.append((item, pool.submit(read, item)))


def ordered_map(read: Callable[[Item], Result], items: Iterable[Item], workers: int | None = None) -> Iterator[Result]:
    """``read(item)`` of each item, in order, computed a few items ahead in a thread pool.

    An exception raised by ``read`` surfaces when its item's turn comes.
    """
    workers = workers or io_workers()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _, future in read_ahead(pool, read, items, depth=2 * workers):
            yield future.result()


def beside(
    run_many: Callable[[Iterable[Item]], Iterable[Result]], items: Iterable[tuple[Context, Item]]
) -> Iterator[tuple[Context, Result]]:
    """Feed the items of ``(context, item)`` pairs to a streaming ``run_many`` and pair each output
    with its item's context.

    ``run_many`` (e.g. ``Predictor.predict_many``) batches its input, so it reads several items
    before it yields the first output; the contexts wait in a queue beside it, in order.
    """
    waiting: deque = deque()

    def feed() -> Iterator[Item]:
        for context, item in items:
            waiting.append(context)
            yield item

    for output in run_many(feed()):
        yield waiting.popleft(), output
