"""Mergeable quantile sketch (DDSketch's log mapping over a sparse bin count). No I/O.

ddsketch provides the mapping and its guarantee: any value is recovered with relative error <= 1 %.
The bins are a plain dict so that a sketch is cheap to merge across buckets and partitions and
serialises to JSON as it is.

    >>> s = Sketch()
    >>> for v in range(1, 101):
    ...     s.add(v)
    >>> abs(s.quantile(0.9) - 90) / 90 <= 0.01    # the 90th percentile of 1..100, within 1 %
    True
"""

from __future__ import annotations

from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.01
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
_key = _MAPPING.key
_value = _MAPPING.value
_MIN = _MAPPING.min_possible


class Sketch:
    __slots__ = ("bins", "zeros", "count")

    def __init__(self, bins: dict[int, int] | None = None, zeros: int = 0) -> None:
        self.bins: dict[int, int] = bins if bins is not None else {}
        self.zeros = zeros
        self.count = zeros + sum(self.bins.values())

    def add(self, value: float) -> None:
        self.count += 1
        if value <= _MIN:
            self.zeros += 1
            return
        k = _key(value)
        self.bins[k] = self.bins.get(k, 0) + 1

    def merge(self, other: Sketch) -> None:
        bins = self.bins
        for k, n in other.bins.items():
            bins[k] = bins.get(k, 0) + n
        self.zeros += other.zeros
        self.count += other.count

    def quantile(self, q: float) -> float | None:
        """Value at quantile q (0..1), same rank rule as ddsketch: rank = q * (count - 1)."""
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        seen = self.zeros
        if rank < seen:
            return 0.0
        for k in sorted(self.bins):
            seen += self.bins[k]
            if seen > rank:
                return float(_value(k))
        return float(_value(max(self.bins)))

    def to_json(self) -> list[object]:
        return [self.zeros, [[k, n] for k, n in self.bins.items()]]

    @classmethod
    def from_json(cls, data: list[object]) -> Sketch:
        zeros, pairs = data
        assert isinstance(zeros, int) and isinstance(pairs, list)
        return cls({int(k): int(n) for k, n in pairs}, zeros)
