"""Per-window flood control: a token bucket over the frames a browser sends."""

from __future__ import annotations

import time


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; each frame takes one.

    Plain arithmetic on each frame — no timer, no task — so an idle window costs nothing.
    """

    __slots__ = ("burst", "rate", "refused_in_a_row", "tokens", "updated")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self.refused_in_a_row = 0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.refused_in_a_row = 0
            return True
        self.refused_in_a_row += 1
        return False
