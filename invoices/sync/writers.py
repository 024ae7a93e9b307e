"""Write in parallel: run write jobs on a few threads, each with its own database connection and
transactions, so PostgreSQL works on two groups of a sync at once (on two CPUs) while the caller
goes on fetching.

    with Writers(threads=2) as writers:
        for group in groups:
            writers.submit(partial(store, group), keys=ids_of(group))

At most ``threads`` jobs run at a time: ``submit`` waits for a free thread, and first for the jobs
in flight that share a key with the new one, so two copies of the same row are written in the
order they were submitted. A job's exception is raised in the caller, at the next ``submit`` or
when the block ends; the jobs already running finish first (what they write is kept) and no new
job starts. With ``threads=1`` every job runs in the caller's thread, on its connection: the way to
write inside a transaction the caller holds, or on a database that takes one writer at a time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Collection, Hashable
from concurrent.futures import Future

from django.db import connections


class Writers:
    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._free = threading.Semaphore(threads)
        self._in_flight: list[tuple[Future, frozenset]] = []
        self._failure: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._work, name=f"sync-writer-{n}", daemon=True)
            for n in range(threads if threads > 1 else 0)
        ]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> Writers:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for future, _keys in self._in_flight:
            self._note(future.exception())
        for _thread in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        if exc is None and self._failure is not None:
            raise self._failure

    def submit(self, job: Callable[[], object], keys: Collection[Hashable] = ()) -> None:
        if not self._threads:
            job()
            return
        keys = frozenset(keys)
        for future, other in self._in_flight:
            if keys & other:
                future.exception()  # waits for it; a failure is raised below
        self._free.acquire()
        still = []
        for future, other in self._in_flight:
            if future.done():
                self._note(future.exception())
            else:
                still.append((future, other))
        self._in_flight = still
        if self._failure is not None:
            self._free.release()
            raise self._failure
        future: Future = Future()
        self._in_flight.append((future, keys))
        self._jobs.put((job, future))

    def _note(self, error: BaseException | None) -> None:
        if error is not None and self._failure is None:
            self._failure = error

    def _work(self) -> None:
        try:
            while (item := self._jobs.get()) is not None:
                job, future = item
                try:
                    future.set_result(job())
                except BaseException as exc:  # handed to the caller, raised there
                    future.set_exception(exc)
                finally:
                    self._free.release()
        finally:
            # This thread's own connection must not outlive it.
            connections.close_all()
