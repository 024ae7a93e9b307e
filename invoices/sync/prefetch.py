"""Fetch ahead: pull an iterator's items in a background thread, a bounded number ahead of the
consumer, so the next page downloads (and parses) while this one is written to the database.

    for page in prefetched(client.iter_invoices(), depth=1):
        store(page)

The items come in order; an exception the iterator raises comes out of the loop at the item where
it happened, with its own traceback. When the loop ends early (``break``, an exception in the
loop), the thread stops after its current item and the iterator is closed there, so nothing keeps
fetching behind the consumer's back.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

from django.db import connections

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(iterable: Iterable[T], depth: int = 1) -> Iterator[T]:
    """The items of ``iterable``, fetched by a background thread at most ``depth`` items ahead of
    the consumer: with ``depth=1`` the thread fetches item n+1 while the caller works on item n.
    Nothing is fetched before the first item is asked for."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    items: queue.SimpleQueue = queue.SimpleQueue()
    room = threading.Semaphore(depth + 1)  # the item in the caller's hands, and `depth` ahead
    stop = threading.Event()

    def fetch() -> None:
        iterator = iter(iterable)
        try:
            while True:
                room.acquire()
                if stop.is_set():
                    break
                try:
                    item = next(iterator)
                except StopIteration:
                    items.put(_DONE)
                    break
                items.put(item)
        except BaseException as exc:  # handed to the consumer, raised there
            items.put(_Failed(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            # The iterator may have used the database (a token store, say): this thread's own
            # connection must not outlive it.
            connections.close_all()

    worker = threading.Thread(target=fetch, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
            room.release()
    finally:
        stop.set()
        room.release()  # wake the thread if it waits for room, so it sees the stop
        worker.join()
