"""The webhook sender: takes due events from the outbox, POSTs them to ``webhook_url`` signed
afresh, and marks each delivered, due again after a back-off, or dead after the last attempt.

One sender runs in every upload API process, in the background: an upload only adds its event
to the outbox (and wakes the sender), so delivery never slows the upload's answer. A receiver
that fails (any status but 2xx), times out or is down gets the event later, with the same id;
delivery is at least once, so receivers deduplicate by ``webhook-id``.

An event that cannot be added to the shared outbox (Redis went away between the upload's check
for room and its end) goes to a **spool**, an SQLite outbox on the process's storage volume,
and is delivered from there: an acknowledged upload always has its event somewhere durable.

The sender also notices a shared outbox that lost its data (its marker gone: Redis restarted
without persistence, or flushed), logs it, counts it, and **refills** it: every event pending
then was added after the oldest pending event it last saw (or, if it saw none pending, after
that moment), so it asks the upload API for the events of the files stored since then, less
``REFILL_MARGIN_MS`` for the replicas' clocks (``refill``: made again from the files'
metadata), and adds them under their ids. Events delivered in that span are delivered again
(same ``webhook-id``: receivers deduplicate); dead letters are not made again.
"""

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Final

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

from app.core.clock import Clock, now_ms
from app.core.logs import get_logger
from app.core.webhooks.events import signature_headers
from app.core.webhooks.outbox import Outbox, Pending

log = get_logger("webhooks")

#: The longest wait between two attempts.
MAX_BACKOFF_SECONDS: Final = 3600
#: Each wait is the back-off times a factor in this range (senders do not retry in step).
JITTER: Final = (0.8, 1.2)
#: Events delivered at once by one sender.
BATCH: Final = 16
#: A refill starts this much before the oldest pending event seen (replicas' clocks differ).
REFILL_MARGIN_MS: Final = 5_000

#: The events (id, body) of the files stored since a moment (Unix ms), made again.
Refill = Callable[[int], Awaitable[list[tuple[str, bytes]]]]


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.delivered = Counter(
            "upload_auth_webhooks_delivered", "Webhook events delivered", registry=registry
        )
        self.retried = Counter(
            "upload_auth_webhooks_retried",
            "Webhook deliveries that failed and will be tried again",
            ["reason"],
            registry=registry,
        )
        self.dead = Counter(
            "upload_auth_webhooks_dead",
            "Webhook events given up after the last attempt (kept as dead letters)",
            registry=registry,
        )
        self.enqueue_failures = Counter(
            "upload_auth_webhooks_enqueue_failures",
            "Uploads whose event could not be added to the outbox, nor to the spool",
            registry=registry,
        )
        self.spooled = Counter(
            "upload_auth_webhooks_spooled",
            "Events added to the local spool because the shared outbox did not answer",
            registry=registry,
        )
        self.outbox_lost = Counter(
            "upload_auth_webhooks_outbox_lost",
            "Times the shared outbox was found to have lost its data (Redis restarted empty)",
            registry=registry,
        )
        self.refilled = Counter(
            "upload_auth_webhooks_refilled",
            "Events made again from the stored files after the shared outbox lost its data",
            registry=registry,
        )
        self.pending = Gauge(
            "upload_auth_webhooks_pending",
            "Webhook events waiting in the outbox",
            registry=registry,
        )
        self.pending_bytes = Gauge(
            "upload_auth_webhooks_pending_bytes",
            "Bytes of the webhook events waiting in the outbox",
            registry=registry,
        )
        self.dead_letters = Gauge(
            "upload_auth_webhooks_dead_letters",
            "Dead letters kept (events given up, until replayed, purged, expired or evicted)",
            registry=registry,
        )
        self.dead_removed = Counter(
            "upload_auth_webhooks_dead_removed",
            "Dead letters removed by the outbox's bounds",
            ["reason"],
            registry=registry,
        )
        self.refused = Counter(
            "upload_auth_webhooks_refused_uploads",
            "Uploads refused (503) because their event could not be queued",
            ["reason"],
            registry=registry,
        )
        self.trimmed = Counter(
            "upload_auth_webhooks_trimmed",
            "Events whose largest fields were left out to keep them within the size bound",
            registry=registry,
        )


class WebhookSender:
    def __init__(
        self,
        outbox: Outbox,
        url: str,
        secret: bytes,
        *,
        clock: Clock,
        metrics: WebhookMetrics,
        timeout: float = 10.0,
        max_attempts: int = 12,
        retry_base: float = 5.0,
        poll_seconds: float = 1.0,
        jitter: Callable[[], float] = lambda: random.uniform(*JITTER),  # noqa: S311
        spool: Outbox | None = None,
        refill: Refill | None = None,
    ) -> None:
        self.outbox = outbox
        #: Makes the events of recent uploads again, for an outbox that lost its data.
        self.refill = refill
        #: No event pending in the outbox was added before this (Unix ms; None: not seen yet).
        self.pending_since: int | None = None
        #: Where a refill due (the outbox found to have lost its data) starts.
        self._refill_from: int | None = None
        #: Where an event goes when the outbox does not take it (None: the outbox is local).
        self.spool = spool
        self.outboxes = (outbox,) if spool is None else (outbox, spool)
        self.url = url
        self.secret = secret
        self.clock = clock
        self.metrics = metrics
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.poll_seconds = poll_seconds
        self.jitter = jitter
        self.wake = asyncio.Event()
        # A claimed event is another sender's to retry only once this one surely gave up.
        self.lease_ms = int((timeout + 30) * 1000)
        self._client = httpx.AsyncClient(timeout=timeout, trust_env=False)
        self._task: asyncio.Task[None] | None = None

    def _now_ms(self) -> int:
        return now_ms(self.clock)

    async def has_room(self) -> bool:
        """Whether the next upload's event fits: the outbox under its pending limits and
        answering. An upload is refused (503) rather than stored without its event."""
        try:
            room = await self.outbox.has_room()
        except Exception as exc:
            self.metrics.refused.labels("unavailable").inc()
            log.warning("webhook outbox unavailable", extra={"error": type(exc).__name__})
            return False
        if not room:
            self.metrics.refused.labels("full").inc()
            log.warning("webhook outbox full: uploads refused until events are delivered")
        return room

    async def enqueue(self, event_id: str, body: bytes) -> None:
        """Add an upload's event, to the outbox or else to the spool; never raises (a failure of
        both is logged and counted)."""
        error = ""
        for outbox in self.outboxes:  # the shared outbox first, then this replica's spool
            try:
                await outbox.add(event_id, body, self._now_ms())
            except Exception as exc:  # the upload is stored: its event must be kept somewhere
                error = error or type(exc).__name__
                continue
            if outbox is self.spool:
                self.metrics.spooled.inc()
                log.warning(
                    "webhook outbox unavailable: event spooled locally",
                    extra={"event_id": event_id, "error": error},
                )
            self.wake.set()
            return
        self.metrics.enqueue_failures.inc()
        log.error("webhook event could not be queued", extra={"event_id": event_id, "error": error})

    async def _release(self, outbox: Outbox, event: Pending) -> None:
        """Give a claimed event back, due now (shutting down before or during its delivery):
        the next process, or another replica, sends it at once instead of after the lease. A
        delivered event is gone already: nothing to give back."""
        await outbox.retry(event.event_id, event.attempts, self._now_ms(), "interrupted")

    def _wait(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``, before jitter: doubling, capped."""
        return float(min(self.retry_base * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS))

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: doubling from ``retry_base``, capped,
        jittered."""
        return self._wait(attempts) * self.jitter()

    async def deliver_due(self) -> int:
        """Deliver what is due now (one batch from the outbox, one from the spool); how many
        events were tried."""
        tried = 0
        for outbox in self.outboxes:
            tried += await self._deliver_from(outbox)
        return tried

    async def _deliver_from(self, outbox: Outbox) -> int:
        claiming = asyncio.ensure_future(outbox.claim(self._now_ms(), self.lease_ms, BATCH))
        try:
            claimed = await asyncio.shield(claiming)
        except asyncio.CancelledError:  # shutting down: what the claim took is given back
            with contextlib.suppress(Exception):
                for event in await claiming:
                    await self._release(outbox, event)
            raise
        if claimed:
            await asyncio.gather(*(self._attempt(outbox, event) for event in claimed))
        return len(claimed)

    async def _attempt(self, outbox: Outbox, event: Pending) -> None:
        try:
            await self._deliver(outbox, event)
        except asyncio.CancelledError:  # shutting down, whatever the step: the event goes back
            with contextlib.suppress(Exception):
                await self._release(outbox, event)
            raise

    async def _deliver(self, outbox: Outbox, event: Pending) -> None:
        headers = signature_headers(self.secret, event.event_id, event.body, self.clock())
        try:
            response = await self._client.post(self.url, content=event.body, headers=headers)
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        else:
            if response.is_success:
                await outbox.done(event.event_id)
                self.metrics.delivered.inc()
                log.info("webhook delivered", extra={"event_id": event.event_id})
                return
            error = f"status {response.status_code}"
        attempts = event.attempts + 1
        if attempts >= self.max_attempts:
            evicted = await outbox.dead(event.event_id, attempts, error, self._now_ms())
            self.metrics.dead.inc()
            if evicted:
                self.metrics.dead_removed.labels("cap").inc(evicted)
                log.warning("oldest dead letters removed (at the cap)", extra={"count": evicted})
            log.error(
                "webhook event given up",
                extra={"event_id": event.event_id, "attempts": attempts, "error": error},
            )
            return
        delay = self.backoff(attempts)
        await outbox.retry(event.event_id, attempts, self._now_ms() + int(delay * 1000), error)
        self.metrics.retried.labels(error.split(" ")[0]).inc()
        log.warning(
            "webhook delivery failed; will retry",
            extra={"event_id": event.event_id, "attempts": attempts, "error": error},
        )

    def delivery_span_ms(self) -> int:
        """The longest an event stays pending: every back-off at its longest, and a lease."""
        waits = sum(self._wait(n) for n in range(1, self.max_attempts))
        return int(waits * JITTER[1] * 1000) + self.lease_ms

    async def _watch_pending(self) -> None:
        """Note where a refill would start (the oldest pending event, or now if none), unless
        the outbox lost its data: then say so, and refill it from there."""
        seen = self._now_ms()
        oldest = await self.outbox.oldest_pending_ms()
        if await self.outbox.check_marker(seen):  # what was read came before any loss
            self.pending_since = seen if oldest is None else min(oldest, seen)
            return
        self.metrics.outbox_lost.inc()
        since = self.pending_since
        if since is None:  # lost before this sender saw it: the longest an event waits
            since = seen - self.delivery_span_ms()
        self._refill_from = since - REFILL_MARGIN_MS

    async def _refill(self, since: int) -> None:
        """Add again the events of the files stored since ``since``."""
        made = [] if self.refill is None else await self.refill(since)
        kept = made[: self.outbox.limits.max_pending]
        now, added = self._now_ms(), 0
        for event_id, body in kept:
            added += await self.outbox.add(event_id, body, now)  # not twice: by id
        self._refill_from = None
        self.metrics.refilled.inc(added)
        log.warning(
            "the webhook outbox had lost its data (Redis restarted without persistence, or "
            "flushed): refilled from the stored files",
            extra={"since_ms": since, "refilled": added, "not_refilled": len(made) - len(kept)},
        )
        if added:
            self.wake.set()

    async def run(self) -> None:
        """Deliver until cancelled: at once when an upload adds an event, else every
        ``poll_seconds`` (events due after a back-off, or leased by a sender that died)."""
        while True:
            try:
                await self._watch_pending()
                if self._refill_from is not None:  # tried again until it is done
                    await self._refill(self._refill_from)
                while await self.deliver_due() >= BATCH:
                    pass
                expired = 0
                for outbox in self.outboxes:
                    expired += await outbox.expire_dead(self._now_ms())
                if expired:
                    self.metrics.dead_removed.labels("expired").inc(expired)
                counts = await self.outbox.counts()
                self.metrics.pending.set(counts["pending"])
                self.metrics.pending_bytes.set(counts["pending_bytes"])
                self.metrics.dead_letters.set(counts["dead"])
            except Exception as exc:  # the outbox may be down for a while
                log.warning("webhook outbox unavailable", extra={"error": type(exc).__name__})
            self.wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the wait ends, and the loop would outlive its shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self.wake.wait()

    def start(self) -> None:
        """Deliver in the background (``run``) until ``stop``."""
        self._task = asyncio.create_task(self.run(), name="webhook sender")

    async def stop(self) -> None:
        """Stop delivering (what was claimed goes back to the outbox, due at once), then close
        the HTTP client and the outbox."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=5)
            self._task = None
        await self._client.aclose()
        for outbox in self.outboxes:
            await outbox.close()
