"""Classic-codec rate points chosen to meet the neural curves: a QP search on every sequence.

For every sequence and neural curve, the QPs whose rate falls inside the curve's rate range [lo, hi] form an
interval [a, b] (rate falls as QP rises). Its ends are found by probing: a first QP guessed from what is
known (rate halves about every 6 QPs), then galloping and bisection on QP. The chosen QPs are shared by all
sequences (so curves average over sequences point by point) and hold at least `inside` QPs in every
interval, evenly spread; where an interval holds fewer QPs (or none: the codec cannot code that rate), a
note says so. A curve of one point (or a narrow range) is widened to a factor of MIN_SPAN around its
centre. Every probe is a real row (encoded, decoded, measured, cached), so none is wasted on a rerun.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

INSIDE = 4  # classic points wanted inside every neural curve's rate range
MIN_SPAN = 2.0  # a target range narrower than this rate factor is widened to it
QP_PER_HALVING = 6.0  # the usual rule for x265 / vvenc / x264 before any probe tells better


@dataclass
class Target:
    """One neural curve's rate range on one sequence, and the QPs of a classic codec inside it."""

    sequence: str
    curve: str
    lo: float
    hi: float
    first: int | None = None  # the lowest QP coding at most `hi` bpp
    last: int | None = None  # the highest QP coding at least `lo` bpp
    note: str = ""

    def holds(self, q: int) -> bool:
        return self.first is not None and self.last is not None and self.first <= q <= self.last


@dataclass
class Search:
    """The outcome: the QPs chosen, every probe's bpp per sequence, the targets, and notes."""

    codec: str
    points: list[int] = field(default_factory=list)
    probed: dict[str, dict[int, float]] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: the QPs used and how they meet the neural curves."""
        short = [t for t in self.targets if sum(t.holds(q) for q in self.points) < INSIDE]
        met = ("every neural curve's rate range on every sequence holds at least "
               f"{INSIDE} of them" if not short else f"{len(short)} of {len(self.targets)} curve ranges hold "
               f"fewer than {INSIDE} (see notes)")
        return f"{self.codec}: QPs {','.join(map(str, self.points))} searched: {met}"

    def as_dict(self) -> dict:
        return {"points": self.points, "inside": INSIDE,
                "probed": {s: {str(q): b for q, b in sorted(p.items())} for s, p in self.probed.items()},
                "targets": [t.__dict__ for t in self.targets], "notes": self.notes}


class _Probe:
    """bpp of one sequence at a QP, measured once."""

    def __init__(self, measure: Callable[[int], float], known: dict[int, float], qmin: int,
                 qmax: int) -> None:
        self.measure, self.known, self.qmin, self.qmax = measure, known, qmin, qmax

    def __call__(self, q: int) -> float:
        if q not in self.known:
            self.known[q] = float(self.measure(q))
        return self.known[q]

    def guess(self, target: float) -> int:
        """A QP expected to code about `target` bpp, from the probes so far."""
        if not self.known:
            return round((self.qmin + self.qmax) * 0.6)
        pts = sorted(self.known.items())
        q0, b0 = min(pts, key=lambda p: abs(math.log(p[1] / target)))
        per = QP_PER_HALVING
        if len(pts) >= 2:
            (qa, ba), (qb, bb) = pts[0], pts[-1]
            if qb > qa and ba > bb > 0:
                per = min(12.0, max(3.0, (qb - qa) / math.log2(ba / bb)))
        q = round(q0 + per * math.log2(b0 / target))
        return min(self.qmax, max(self.qmin, q))

    def first_at_most(self, target: float) -> int | None:
        """The lowest QP coding at most `target` bpp (None: even the highest QP codes more)."""
        lo, hi = self.qmin - 1, self.qmax + 1  # the predicate is taken False at lo and True at hi
        for q, b in self.known.items():
            if b <= target:
                hi = min(hi, q)
            else:
                lo = max(lo, q)
        for step in range(self.qmax - self.qmin + 2):
            if hi - lo <= 1:
                break
            q = self.guess(target) if step < 3 or step % 2 else (lo + hi) // 2  # model first, then halving
            q = min(hi - 1, max(lo + 1, q))
            if self(q) <= target:
                hi = q
            else:
                lo = q
        return None if hi == self.qmax + 1 else hi


def spread(first: int, last: int, k: int) -> list[int]:
    """`k` QPs spread evenly over [first, last] (all of them when the interval holds fewer)."""
    if last - first + 1 <= k:
        return list(range(first, last + 1))
    return sorted({round(first + i * (last - first) / (k - 1)) for i in range(k)})


def search_points(codec: str, qp_range: tuple[int, int], targets: list[Target],
                  measure: Callable[[str, int], float], inside: int = INSIDE) -> Search:
    """The QPs of `codec` (within `qp_range`) that put `inside` points in every target's rate range;
    `measure(sequence, qp)` codes one sequence and returns its bpp."""
    qmin, qmax = qp_range
    out = Search(codec, targets=targets)
    probes: dict[str, _Probe] = {}
    for t in targets:
        if t.hi / t.lo < MIN_SPAN:
            mid, half = math.sqrt(t.hi * t.lo), math.sqrt(MIN_SPAN)
            t.lo, t.hi = mid / half, mid * half
        probe = probes.setdefault(t.sequence, _Probe(lambda q, s=t.sequence: measure(s, q),
                                                     out.probed.setdefault(t.sequence, {}), qmin, qmax))
        t.first = probe.first_at_most(t.hi)
        below = probe.first_at_most(t.lo * (1 - 1e-9))  # the lowest QP coding under lo
        t.last = qmax if below is None else below - 1
        where = f"{codec} on {t.sequence} against {t.curve} ({t.lo:.4g}-{t.hi:.4g} bpp)"
        if t.first is None:
            t.note = f"{where}: even QP {qmax} codes {probe(qmax):.4g} bpp, above the range"
        elif t.last < qmin:
            t.note = f"{where}: even QP {qmin} codes {probe(qmin):.4g} bpp, below the range"
        elif t.last - t.first + 1 < inside:
            t.note = (f"{where}: only QPs {t.first}-{t.last} code inside the range "
                      f"({t.last - t.first + 1} < {inside} points)" if t.last >= t.first
                      else f"{where}: no QP codes inside the range (QP {t.last} codes {probe(t.last):.4g}, "
                           f"QP {t.first} {probe(t.first):.4g} bpp)")
    chosen: set[int] = set()
    for t in sorted(targets, key=lambda t: (t.last or 0) - (t.first or 0)):
        if t.first is None or t.last is None or t.last < t.first:  # the nearest QPs, for a curve all the same
            near = (qmax if t.first is None else qmin if t.last is None or t.last < qmin else t.first)
            start = min(max(qmin, near - inside // 2), qmax - inside + 1)
            chosen.update(range(start, start + inside))
            continue
        for q in spread(t.first, t.last, inside) + list(range(t.first, t.last + 1)):
            if sum(t.holds(c) for c in chosen) >= inside:
                break
            chosen.add(q)
    out.points = sorted(chosen)
    out.notes = [t.note for t in targets if t.note]
    return out
