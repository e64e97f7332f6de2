"""Counts that the chaos and fuzz tests report, printed at the end of the run (Jepsen-style).

A test records one ``Tally`` per scenario; ``tests/conftest.py`` prints every recorded tally in the
terminal summary, so CI's log shows the counts whether the test passed or failed. The test itself asserts
on them (``assert_nothing_lost``): the printing is the evidence, the assertion is the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RECORDED: list[Tally] = []


@dataclass(slots=True)
class Tally:
    scenario: str
    # What was attempted (orders placed, requests sent), and what came out whole.
    attempted: int = 0
    ok: int = 0
    lost: int = 0
    duplicated: int = 0
    # Work the faults interrupted that the system finished anyway (redelivered, re-enqueued, retried).
    recovered: int = 0
    # Anything else worth a figure: faults injected, seconds to redelivery, server errors.
    figures: dict[str, float | int | str] = field(default_factory=dict)

    def line(self) -> str:
        extra = "".join(f" {k}={_fmt(v)}" for k, v in self.figures.items())
        return (
            f"{self.scenario}: attempted={self.attempted} ok={self.ok} lost={self.lost} "
            f"duplicated={self.duplicated} recovered={self.recovered}{extra}"
        )

    def assert_nothing_lost(self) -> None:
        assert (self.lost, self.duplicated) == (0, 0), self.line()
        assert self.ok == self.attempted, self.line()


def record(tally: Tally) -> Tally:
    """Keep ``tally`` for the end-of-run summary (call it before asserting, so failures print too)."""
    RECORDED.append(tally)
    return tally


def _fmt(value: float | int | str) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
