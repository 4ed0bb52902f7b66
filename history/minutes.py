"""State-topic bucket records merged per (scope, minute): what the history writer writes. Pure.

The state topic holds, per source partition, the accumulator of each (scope, bucket) with its
watermark (stream/records.py). A minute's history row is the merge of every partition's buckets in
that minute, exactly what the API's view computes; it is rewritten whenever one of them changes.

Minutes whose buckets may still change (the last 24 h, less a margin) replace their row. Older ones
are final: when the writer (re)starts and finds one, it only fills a gap (a row that does not exist),
because a partition may already have expired its part of that minute from the compacted topic.

    m = Minutes()
    m.apply(key, value)            # every state record
    fresh, final = m.drain(now)    # rows to upsert, rows to insert where missing
    m.again(fresh + final)         # the write failed (database down): drained again next time
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from history.series import MINUTE, HistoryRow, floor
from stream.folds import Acc
from stream.records import BucketKey, BucketValue, decode_key
from stream.windows import LONGEST

SETTLED_S = LONGEST - 600  # a minute older than this may have lost a partition's part to expiry
KEEP_S = LONGEST + 3600  # minutes held in memory



class Minutes:
    def __init__(self) -> None:
        # (scope, minute) -> (topic, partition, bucket) -> (watermark, accumulator)
        self._parts: dict[tuple[str, int], dict[tuple[str, int, int], tuple[int, Acc]]] = defaultdict(dict)
        self._dirty: set[tuple[str, int]] = set()

    def apply(self, kraw: bytes | None, vraw: bytes | None) -> None:
        match decode_key(kraw):
            case BucketKey(topic, p, scope, bucket) if vraw is not None:
                k, sub = (scope, floor(bucket, MINUTE)), (topic, p, bucket)
                v = BucketValue.from_bytes(vraw)
                cur = self._parts[k].get(sub)
                if cur is not None and v.wm < cur[0]:
                    return  # a late write of a worker that lost the partition
                self._parts[k][sub] = (v.wm, v.acc)
                self._dirty.add(k)
            # A tombstone (an expired bucket) leaves the history as it is: the row keeps its figures.

    def drain(self, now: float) -> tuple[list[HistoryRow], list[HistoryRow]]:
        """(rows to write, final rows to write only where missing) for every minute changed since."""
        fresh: list[HistoryRow] = []
        final: list[HistoryRow] = []
        settled = now - SETTLED_S
        for scope, minute in sorted(self._dirty):
            acc = Acc()
            for _, a in self._parts[(scope, minute)].values():
                acc.merge(a)
            (fresh if minute >= settled else final).append(("m", scope, minute, acc))
        self._dirty.clear()
        return fresh, final

    def again(self, rows: Iterable[HistoryRow]) -> None:
        """Mark the minutes of `rows` changed again, so that the next `drain` returns them (with
        whatever else changed meanwhile)."""
        for _, scope, minute, _ in rows:
            if (scope, minute) in self._parts:
                self._dirty.add((scope, minute))

    def pending(self) -> int:
        """Minutes changed since the last drain."""
        return len(self._dirty)

    def expire(self, now: float) -> None:
        oldest = now - KEEP_S
        for k in [k for k in self._parts if k[1] < oldest]:
            del self._parts[k]
            self._dirty.discard(k)

    def __len__(self) -> int:
        return len(self._parts)
