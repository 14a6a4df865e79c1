"""User histories: Redis when REDIS_URL is set, else an in-process store (the embedded default).

A history is a list of external item ids, oldest first, capped at `cap` items, expiring `ttl_s` after
its last event. An event with an `event_id` already seen (within `event_ttl_s`) is applied once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import redis


class StoreError(RuntimeError):
    """The history store failed (Redis down, timeout); callers degrade instead of failing."""


@dataclass
class Event:
    user_id: str
    item_id: str
    ts: float | None = None
    event_id: str | None = None


class HistoryStore(Protocol):
    def get(self, user_id: str) -> list[str]: ...
    def append(self, events: list[Event]) -> tuple[int, int]: ...  # (applied, duplicates)
    def ping(self) -> bool: ...
    def close(self) -> None: ...


class MemoryStore:
    """Thread-safe in-process store. NOTE: per worker process: with --workers > 1 use Redis."""

    def __init__(self, cap: int, ttl_s: int, event_ttl_s: int) -> None:
        self.cap, self.ttl_s, self.event_ttl_s = cap, ttl_s, event_ttl_s
        self._hist: dict[str, tuple[deque[str], float]] = {}
        self._events: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, user_id: str) -> list[str]:
        with self._lock:
            got = self._hist.get(user_id)
            if got is None or got[1] < time.time():
                self._hist.pop(user_id, None)
                return []
            return list(got[0])

    def append(self, events: list[Event]) -> tuple[int, int]:
        now = time.time()
        applied = dup = 0
        with self._lock:
            if len(self._events) > 100_000:  # forget expired event ids now and then
                self._events = {k: v for k, v in self._events.items() if v > now}
            for ev in events:
                if ev.event_id is not None:
                    if self._events.get(ev.event_id, 0) > now:
                        dup += 1
                        continue
                    self._events[ev.event_id] = now + self.event_ttl_s
                q, exp = self._hist.get(ev.user_id, (deque(maxlen=self.cap), 0.0))
                if exp < now:
                    q = deque(maxlen=self.cap)
                q.append(ev.item_id)
                self._hist[ev.user_id] = (q, now + self.ttl_s)
                applied += 1
        return applied, dup

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass


# KEYS[1] = event key ('' when none), KEYS[2] = history list; ARGV = item, cap, ttl, event ttl.
# NOTE: one script, so the de-duplication mark and the append are atomic: a failure cannot leave
# an event marked as seen but never appended.
_APPEND = """
if KEYS[1] ~= '' then
  if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[4])) then return 0 end
end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return 1
"""


class RedisStore:
    def __init__(
        self,
        url: str,
        cap: int,
        ttl_s: int,
        event_ttl_s: int,
        timeout_s: float = 0.25,
        prefix: str = "recgpt",
    ) -> None:
        self.cap, self.ttl_s, self.event_ttl_s, self.prefix = cap, ttl_s, event_ttl_s, prefix
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
            health_check_interval=30,
        )
        self._script = self.client.register_script(_APPEND)

    def _hkey(self, user_id: str) -> str:
        return f"{self.prefix}:hist:{user_id}"

    def get(self, user_id: str) -> list[str]:
        try:
            return list(self.client.lrange(self._hkey(user_id), 0, -1))
        except redis.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc

    def append(self, events: list[Event]) -> tuple[int, int]:
        try:
            pipe = self.client.pipeline(transaction=False)
            for ev in events:
                ekey = f"{self.prefix}:ev:{ev.event_id}" if ev.event_id is not None else ""
                self._script(
                    keys=[ekey, self._hkey(ev.user_id)],
                    args=[ev.item_id, self.cap, self.ttl_s, self.event_ttl_s],
                    client=pipe,
                )
            res = pipe.execute()
        except redis.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc
        applied = sum(int(r) for r in res)
        return applied, len(res) - applied

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self.client.close()
