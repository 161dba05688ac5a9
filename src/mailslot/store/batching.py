"""Which waiting jobs a store commits together: fair batches, shared by every store.

Waiting jobs are kept in one FIFO per owner (the user a send comes from, or a check
or ack is for; everything else shares one owner), and a batch takes one job from
each owner in turn while they fit in ROWS_PER_COMMIT queue rows. A job bigger than
that (a broadcast to thousands) lets the small jobs behind it go first once, then
commits alone. One user's burst of broadcasts therefore delays another user's send
by at most one commit, at the price of one commit per big broadcast.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mailslot.store.base import NewMessage

MAX_JOBS_PER_COMMIT = 5_000
ROWS_PER_COMMIT = 4_096  # queue rows written or deleted per commit, unless one job has more

R = TypeVar("R")
Owner = str | int
_SHARED: Owner = ""  # the owner of jobs that belong to no user


@dataclass(slots=True)
class Call(Generic[R]):
    """Any operation but a send. `run`: what the store does with its connection;
    `user_id`: whose it is, for fair sharing; `rows`: queue rows it writes or
    deletes; `grows`: refused when the disk is nearly full."""

    run: R
    future: asyncio.Future[Any]
    user_id: int | None = None
    rows: int = 1
    grows: bool = False
    writes: bool = True


@dataclass(slots=True)
class Enqueue:
    """Sends: consecutive ones in a batch are written together."""

    messages: Sequence[NewMessage]
    future: asyncio.Future[Any]
    rows: int = 0
    grows: bool = True
    writes: bool = True


# (the future, whether it succeeded, its result or the exception to raise)
Outcome = tuple[asyncio.Future[Any], bool, Any]


class FairBatches(Generic[R]):
    """The waiting jobs, by owner, in the order they are to be served."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}  # user id -> name, so all of a user's jobs share an owner
        self._waiting: OrderedDict[Owner, deque[Call[R] | Enqueue]] = OrderedDict()
        self._passed_over: Call[R] | Enqueue | None = None  # a big job that let small ones go
        self.last_owners = 0  # how many owners had jobs waiting when the last batch was taken

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def owners(self) -> int:
        """How many owners have jobs waiting."""
        return len(self._waiting)

    def few_writes(self, rows: int) -> bool:
        """Whether the waiting jobs write something, but fewer than `rows` queue rows."""
        writes = False
        for jobs in self._waiting.values():
            for job in jobs:
                rows -= job.rows
                if rows <= 0:
                    return False
                writes = writes or job.writes
        return writes

    def add(self, job: Call[R] | Enqueue) -> None:
        if isinstance(job, Enqueue):
            job.rows = sum(len(message.recipient_ids) for message in job.messages)
            owner: Owner = job.messages[0].sender if job.messages else _SHARED
        elif job.user_id is None:
            owner = _SHARED
        else:
            owner = self.names.get(job.user_id, job.user_id)
        jobs = self._waiting.get(owner)
        if jobs is None:
            self._waiting[owner] = deque([job])
        else:
            jobs.append(job)

    def take_all(self) -> list[Call[R] | Enqueue]:
        """Every waiting job, for failing them all at once."""
        jobs = [job for owner_jobs in self._waiting.values() for job in owner_jobs]
        self._waiting.clear()
        self._passed_over = None
        return jobs

    def next_batch(self) -> list[Call[R] | Enqueue]:
        """Jobs from each owner in turn while they fit in ROWS_PER_COMMIT; an owner
        served goes to the back of the line, one whose job did not fit keeps its
        place. A job bigger than that alone (a broadcast to thousands) is passed over
        once, for the small jobs waiting behind it, then committed alone. So a small
        job waits for at most the commit under way and one more."""
        waiting = self._waiting
        head_jobs = waiting[next(iter(waiting))]
        if head_jobs[0] is self._passed_over:
            self._passed_over = None
            self.last_owners = 1
            return [self._take(next(iter(waiting)))]
        batch: list[Call[R] | Enqueue] = []
        rows = 0
        candidates = list(waiting)
        self.last_owners = len(candidates)
        while candidates and len(batch) < MAX_JOBS_PER_COMMIT:
            next_round = []
            for owner in candidates:
                if rows + waiting[owner][0].rows > ROWS_PER_COMMIT:
                    continue
                job = self._take(owner)
                batch.append(job)
                rows += job.rows
                if owner in waiting:
                    next_round.append(owner)
                if len(batch) >= MAX_JOBS_PER_COMMIT:
                    break
            candidates = next_round
        if not batch:  # only big jobs wait
            self.last_owners = 1
            return [self._take(next(iter(waiting)))]
        if waiting:
            head_job = waiting[next(iter(waiting))][0]
            if head_job.rows > ROWS_PER_COMMIT:
                self._passed_over = head_job
        return batch

    def _take(self, owner: Owner) -> Call[R] | Enqueue:
        jobs = self._waiting[owner]
        job = jobs.popleft()
        if jobs:
            self._waiting.move_to_end(owner)
        else:
            del self._waiting[owner]
        return job


def send_outcomes(sends: Sequence[Enqueue], ids: Sequence[int]) -> list[Outcome]:
    """Each send's message ids, from the ids of all their messages in order."""
    outcomes: list[Outcome] = []
    start = 0
    for send in sends:
        end = start + len(send.messages)
        outcomes.append((send.future, True, list(ids[start:end])))
        start = end
    return outcomes


def resolve(outcomes: list[Outcome]) -> None:
    """Hand each job its result or its error (on the event loop's thread)."""
    for future, succeeded, value in outcomes:
        if future.cancelled():
            continue
        if succeeded:
            future.set_result(value)
        else:
            future.set_exception(value)
