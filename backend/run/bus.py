"""The event bus: the engine emits, subscribers (TUI, headless printer, journal) receive.

Dispatch is synchronous and in order; a subscriber must be quick (write a line, post a message).
A failing subscriber never breaks the run: it is dropped and the failure is reported once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from backend.clock import Clock
from backend.events import Event

log = logging.getLogger(__name__)

Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock.wall()
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def emit(self, event: Event) -> Event:
        if not event.ts:
            event.ts = self.clock.now()
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # a broken view must not stop the install
                log.exception("event subscriber %r failed and was removed", subscriber)
                self._subscribers.remove(subscriber)
        return event
