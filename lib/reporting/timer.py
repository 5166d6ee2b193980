"""Wall-clock laps of a notebook's steps (seconds, for metrics.json's timings)."""
import time


class Timer:
    """lap(name): seconds since the previous lap (or since the Timer was made), kept in `laps` under `name`."""

    def __init__(self):
        self.t = time.time()
        self.laps = {}

    def lap(self, name):
        now = time.time()
        self.laps[name] = round(now - self.t, 1)
        self.t = now
        return self.laps[name]
