"""The QoS event stream: every sample with an id, a replay buffer, batching for SSE.

Each event gets the id ``<boot id>-<sequence>``: the boot id changes when the service
restarts, the sequence counts from 1 within a boot. A client that reconnects with
``Last-Event-ID`` gets every event after that one from the replay buffer (the last
:data:`REPLAY_EVENTS`), so it misses nothing and sees nothing twice; an id from an earlier
boot replays this boot from its start. If the client fell further behind than the
buffer reaches, the stream says so first (a ``gap`` event naming how many were lost).
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Iterator

#: Events kept for clients that reconnect.
REPLAY_EVENTS = 20000
#: Seconds an SSE response waits to gather events into one write ("a few times a second").
BATCH_S = 0.25
#: Seconds between keep-alive comments on an idle stream.
KEEPALIVE_S = 10.0


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str
    data: dict


class EventBus:
    """Publish from any thread; read with :meth:`after` (blocking with a timeout)."""

    def __init__(self, boot_id: str | None = None, replay: int = REPLAY_EVENTS):
        self.boot_id = boot_id or secrets.token_hex(4)
        self._cond = threading.Condition()
        self._seq = 0
        self._buf: deque[Event] = deque(maxlen=replay)
        self.closed = False

    @property
    def last_seq(self) -> int:
        return self._seq

    def publish(self, kind: str, data: dict) -> int:
        with self._cond:
            self._seq += 1
            self._buf.append(Event(self._seq, kind, data))
            self._cond.notify_all()
            return self._seq

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def start_after(self, last_event_id: str | None) -> int:
        """The sequence a client has seen, from its ``Last-Event-ID`` (0: from this boot's
        start; the current end for a new client)."""
        if last_event_id is None:
            return self._seq
        boot, _, seq = last_event_id.strip().rpartition("-")
        if boot != self.boot_id or not seq.isdigit():
            return 0
        return min(int(seq), self._seq)

    def after(self, seq: int, timeout: float) -> tuple[list[Event], int]:
        """Events after ``seq`` (waiting up to ``timeout`` for one) and how many of them
        the buffer no longer holds."""
        with self._cond:
            if self._seq <= seq and not self.closed:
                self._cond.wait(timeout)
            events = [e for e in self._buf if e.seq > seq] if self._seq > seq else []
            first = events[0].seq if events else self._seq + 1
            return events, max(0, first - seq - 1)

    def event_id(self, seq: int) -> str:
        return f"{self.boot_id}-{seq}"

    def sse(self, after_seq: int, stop: threading.Event,
            batch_s: float = BATCH_S) -> Iterator[str]:
        """SSE text for one client: batched writes, keep-alives, ends when ``stop`` is set
        or the bus closes."""
        seq = after_seq
        yield f"retry: 2000\n: boot {self.boot_id}\n\n"
        quiet = time.monotonic()
        while not stop.is_set() and not self.closed:
            events, lost = self.after(seq, timeout=1.0)
            if not events:
                if time.monotonic() - quiet > KEEPALIVE_S:
                    quiet = time.monotonic()
                    yield ": keep-alive\n\n"
                continue
            time.sleep(batch_s)                       # gather a batch
            more, _ = self.after(events[-1].seq, timeout=0.0)
            events += more
            parts = []
            if lost:
                parts.append(f"event: gap\ndata: {json.dumps({'lost': lost})}\n\n")
            for e in events:
                parts.append(f"id: {self.event_id(e.seq)}\nevent: {e.kind}\n"
                             f"data: {json.dumps(e.data, separators=(',', ':'))}\n\n")
            seq = events[-1].seq
            quiet = time.monotonic()
            yield "".join(parts)
