"""Keep the Tk thread free: run blocking work elsewhere and hand results back via ``after``.

Tk is not thread-safe, so worker threads never touch widgets. They finish a
``concurrent.futures.Future``; a :class:`Pump` polls its futures and queues from the
Tk thread every few milliseconds and calls the registered callbacks there.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import tkinter as tk
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Pump:
    """Polls futures and queues on behalf of one window, on the Tk thread."""

    def __init__(self, widget: tk.Misc, interval_ms: int = 40, name: str = "mailslot-gui") -> None:
        self._widget = widget
        self._interval = interval_ms
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix=name)
        self._watched: list[tuple[Future[Any], Callable[[Future[Any]], None]]] = []
        self._queues: list[
            tuple[queue.Queue[Any] | queue.SimpleQueue[Any], Callable[[list[Any]], None], int]
        ] = []
        self._tickers: list[Callable[[], None]] = []
        self._after_id: str | None = None
        self._stopped = False
        widget.bind("<Destroy>", self._destroyed, add="+")
        self._schedule()

    def _destroyed(self, event: tk.Event[tk.Misc]) -> None:
        if event.widget is self._widget:
            self.stop()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def run(self, fn: Callable[..., T], *args: Any, done: Callable[[Future[T]], None]) -> Future[T]:
        """Run ``fn(*args)`` on a worker thread; call ``done(future)`` on the Tk thread."""
        fut: Future[T] = self._executor.submit(fn, *args)
        self.watch(fut, done)
        return fut

    def watch(self, fut: Future[T], done: Callable[[Future[T]], None]) -> None:
        """Call ``done(fut)`` on the Tk thread once ``fut`` has finished."""
        self._watched.append((fut, done))

    def drain(
        self,
        q: queue.Queue[T] | queue.SimpleQueue[T],
        handler: Callable[[list[T]], None],
        batch: int = 500,
    ) -> None:
        """Hand items of ``q`` to ``handler`` in batches of at most ``batch`` per tick."""
        self._queues.append((q, handler, batch))

    def forget_queue(self, q: queue.Queue[Any] | queue.SimpleQueue[Any]) -> None:
        self._queues = [entry for entry in self._queues if entry[0] is not q]

    def tick(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` on every poll (keep it cheap)."""
        self._tickers.append(fn)

    def stop(self) -> None:
        """Stop polling; pending callbacks are dropped. Worker threads finish on their own."""
        self._stopped = True
        if self._after_id is not None:
            with contextlib.suppress(tk.TclError):
                self._widget.after_cancel(self._after_id)
            self._after_id = None
        self._watched.clear()
        self._queues.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _schedule(self) -> None:
        if not self._stopped:
            self._after_id = self._widget.after(self._interval, self._poll)

    def _poll(self) -> None:
        self._after_id = None
        if self._stopped:
            return
        try:
            if self._watched:
                ready = [entry for entry in self._watched if entry[0].done()]
                if ready:
                    self._watched = [entry for entry in self._watched if not entry[0].done()]
                    for fut, done in ready:
                        self._call(done, fut)
            for q, handler, batch in list(self._queues):
                items: list[Any] = []
                while len(items) < batch:
                    try:
                        items.append(q.get_nowait())
                    except queue.Empty:
                        break
                if items:
                    self._call(handler, items)
            for fn in list(self._tickers):
                self._call(fn)
        finally:
            self._schedule()

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        if self._stopped:
            return
        try:
            fn(*args)
        except tk.TclError:
            # The window went away between the poll and the callback.
            log.debug("Tk callback on a destroyed widget", exc_info=True)
        except Exception:
            log.exception("GUI callback failed")
