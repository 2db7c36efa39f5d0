"""Compact numpy index structures of the grouping engine (pipelines.group).

The grouper's in-memory indexes are retrieval indexes rebuilt from the store, not the store
itself, so they are kept small and fast to load: :class:`Grow` (numpy rows appended one at a
time), :class:`GroupIds` (group ids packed in 8 bytes), :class:`Postings` (uint32 key -> row
and weight postings in sorted numpy segments: the term-to-article inverted index, the LSH
buckets, the content hashes), :class:`Counts` (uint64 key -> count: template lines, document
frequencies), and banded LSH over MinHash signatures (:func:`band_keys`;
bands and rows chosen by ``datasketch.MinHashLSH`` for the threshold: :func:`lsh_band_params`).
See docs/grouping.md for why not datasketch's ``MinHashLSH`` object itself.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

__all__ = ["Counts", "GroupIds", "Grow", "Postings", "band_keys", "lsh_band_params", "stable_order"]

class Grow:
    """A numpy array of rows appended one at a time (capacity grows by half each time it is full)."""

    def __init__(self, dtype, width: int | None = None, fill=0):
        self.fill = fill
        self.width = width
        self.data = np.full(self._shape(1024), fill, dtype=dtype)
        self.n = 0

    def _shape(self, rows: int) -> tuple:
        return (rows,) if self.width is None else (rows, self.width)

    def reserve(self, capacity: int) -> None:
        if capacity > len(self.data):
            data = np.full(self._shape(capacity), self.fill, dtype=self.data.dtype)
            data[: self.n] = self.data[: self.n]
            self.data = data

    def append(self, value) -> None:
        if self.n == len(self.data):
            self.reserve(len(self.data) + len(self.data) // 2 + 1024)
        self.data[self.n] = value
        self.n += 1

    def extend(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        self.reserve(need)
        self.data[self.n : need] = values
        self.n = need

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.n]


class GroupIds:
    """Group ids by index: ``prefix`` + 15 hex digits, packed in 8 bytes (an id of another form is kept as text).

    New ids come from the URL of a group's first article, which is new to the index, so
    :meth:`append` does not look for an existing equal id (that saves a dict entry per group).
    """

    _ODD = np.uint64(1 << 63)  # packed values with the top bit set stand for ids kept in _odd

    def __init__(self, prefix: str):
        self.prefix = prefix
        self._packed = Grow(np.uint64)
        self._odd: dict[int, str] = {}  # index -> id not of the standard form

    def __len__(self) -> int:
        return self._packed.n

    def __getitem__(self, index: int) -> str:
        odd = self._odd.get(index)
        return odd if odd is not None else f"{self.prefix}{int(self._packed.data[index]):015x}"

    def _pack(self, gid: str) -> int | None:
        if len(gid) == 16 and gid[0] == self.prefix:
            try:
                return int(gid[1:], 16)
            except ValueError:
                return None
        return None

    def append(self, gid: str) -> int:
        index = self._packed.n
        value = self._pack(gid)
        if value is None:
            self._odd[index] = gid
            value = int(self._ODD) | index
        self._packed.append(value)
        return index

    def load(self, ids: list[str]) -> np.ndarray:
        """Index of each stored id (equal ids, equal index; indices in order of first appearance)."""
        if len(self):
            raise RuntimeError("load() fills an empty id table")
        odd_of: dict[str, int] = {}
        values = np.fromiter(
            (v if (v := self._pack(g)) is not None else int(self._ODD) | odd_of.setdefault(g, len(odd_of)) for g in ids),
            dtype=np.uint64,
            count=len(ids),
        )
        uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty(len(order), dtype=np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        packed = uniq[order]
        odd_names = {i: g for g, i in odd_of.items()}
        for index in np.flatnonzero(packed & self._ODD).tolist():
            self._odd[index] = odd_names[int(packed[index] & ~self._ODD)]
        self._packed.extend(packed)
        return rank[inverse.reshape(-1)]


def stable_order(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` of uint32 keys, through one (SIMD) sort of ``key << 32 | position``."""
    packed = (keys.astype(np.uint64) << np.uint64(32)) | np.arange(len(keys), dtype=np.uint64)
    packed.sort()
    return (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)


class Postings:
    """uint32 key -> (row, weight) postings, compact (12 bytes each) and append-only.

    Three levels: a buffer of recent postings (numpy arrays plus a dict from key to buffer
    positions), a small sorted segment it is flushed into, and a big sorted segment the small
    one is merged into when it outgrows an eighth of it. Merging two sorted runs is a linear
    timsort pass, and a lookup is a dict probe plus two binary searches per segment. Rows are
    added in increasing order, so within a key the newest postings come last.
    """

    _BUFFER = 4096
    _EMPTY = (np.zeros(0, np.uint32), np.zeros(0, np.int32), np.zeros(0, np.float32))

    def __init__(self, weighted: bool, keep: Callable[[np.ndarray], np.ndarray] | None = None):
        self.weighted = weighted
        self.keep = keep  # rows -> mask of postings still worth keeping, applied when the big segment is rebuilt
        self._big = self._small = self._EMPTY
        self._bk = np.empty(self._BUFFER, np.uint32)
        self._br = np.empty(self._BUFFER, np.int32)
        self._bw = np.empty(self._BUFFER if weighted else 0, np.float32)
        self._bn = 0
        self._where: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self._big[0]) + len(self._small[0]) + self._bn

    @property
    def nbytes(self) -> int:
        arrays = (*self._big, *self._small, self._bk, self._br, self._bw)
        return sum(a.nbytes for a in arrays)

    def _sorted(self, keys: np.ndarray, rows: np.ndarray, weights: np.ndarray | None) -> tuple:
        order = stable_order(keys)  # stable: rows stay in increasing order within a key
        return (
            keys[order].astype(np.uint32, copy=False),
            rows[order].astype(np.int32, copy=False),
            weights[order].astype(np.float32, copy=False) if self.weighted else self._EMPTY[2],
        )

    def _merge(self, old: tuple, new: tuple) -> tuple:
        if not len(old[0]):
            return new
        return self._sorted(*(np.concatenate([o, n]) for o, n in zip(old, new)))

    def load(self, keys: np.ndarray, rows: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Replace the contents (``rows`` in increasing order)."""
        self._big = self._sorted(np.asarray(keys, np.uint32), np.asarray(rows), weights) if len(keys) else self._EMPTY
        self._small = self._EMPTY
        self._bn = 0
        self._where.clear()

    def add_bulk(self, keys: np.ndarray, rows: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Bulk loading in slices (rows increasing across calls); call seal() after the last."""
        self._small = self._merge(self._small, self._sorted(np.asarray(keys, np.uint32), rows, weights))

    def seal(self) -> None:
        self._big = self._merge(self._big, self._small)
        self._small = self._EMPTY

    def add(self, keys: np.ndarray, row: int, weights: np.ndarray | None = None) -> None:
        n = len(keys)
        if self._bn + n > len(self._bk):
            self._flush()
            if n > len(self._bk):  # larger than the whole buffer: straight into the small segment
                rows = np.full(n, row, np.int32)
                self._small = self._merge(self._small, self._sorted(np.asarray(keys, np.uint32), rows, weights))
                return
        start, end = self._bn, self._bn + n
        self._bk[start:end] = keys
        self._br[start:end] = row
        if self.weighted:
            self._bw[start:end] = weights
        where = self._where
        for i, key in enumerate(self._bk[start:end].tolist(), start):
            entry = where.get(key)
            if entry is None:
                where[key] = [i]
            else:
                entry.append(i)
        self._bn = end

    def _flush(self) -> None:
        if not self._bn:
            return
        n = self._bn
        buffered = self._sorted(self._bk[:n].copy(), self._br[:n].copy(), self._bw[:n].copy() if self.weighted else None)
        self._small = self._merge(self._small, buffered)
        self._bn = 0
        self._where.clear()
        if len(self._small[0]) > max(65_536, len(self._big[0]) // 8):
            big = self._merge(self._big, self._small)
            if self.keep is not None:
                mask = self.keep(big[1])
                if not mask.all():
                    big = (big[0][mask], big[1][mask], big[2][mask] if self.weighted else big[2])
            self._big, self._small = big, self._EMPTY

    def lookup(self, keys: np.ndarray, cap: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, weights, and the position in ``keys`` (distinct) of the key each posting matched.

        With ``cap``, about the ``cap`` most recent postings of each key: every buffered one,
        then the newest ones of the small and of the big segment.
        """
        keys = np.asarray(keys, dtype=np.uint32)
        m = len(keys)
        rows, weights, which = [], [], []
        left = np.full(m, cap if cap is not None else np.iinfo(np.int64).max, dtype=np.int64)
        if self._bn and m:
            where = self._where
            hits: list[int] = []
            hit_which: list[int] = []
            for i, key in enumerate(keys.tolist()):
                entry = where.get(key)
                if entry is not None:
                    hits.extend(entry)
                    hit_which.extend([i] * len(entry))
            if hits:
                hit = np.array(hits, dtype=np.int64)
                w = np.array(hit_which, dtype=np.int32)
                rows.append(self._br[hit])
                which.append(w)
                if self.weighted:
                    weights.append(self._bw[hit])
                left -= np.bincount(w, minlength=m)
        for seg_keys, seg_rows, seg_weights in (self._small, self._big):
            if not len(seg_keys):
                continue
            lo = np.searchsorted(seg_keys, keys, "left")
            hi = np.searchsorted(seg_keys, keys, "right")
            lo = np.maximum(lo, hi - np.maximum(left, 0))
            lengths = hi - lo
            total = int(lengths.sum())
            if not total:
                continue
            left -= lengths
            pos = np.arange(total, dtype=np.int64) + np.repeat(lo - (np.cumsum(lengths) - lengths), lengths)
            rows.append(seg_rows[pos])
            which.append(np.repeat(np.arange(m, dtype=np.int32), lengths))
            if self.weighted:
                weights.append(seg_weights[pos])
        if not rows:
            empty = np.zeros(0, np.int32)
            return empty, np.zeros(0, np.float32), empty
        return (
            np.concatenate(rows),
            np.concatenate(weights) if self.weighted else np.zeros(0, np.float32),
            np.concatenate(which),
        )


class Counts:
    """uint64 key -> count: sorted numpy arrays plus a dict of recent increments."""

    def __init__(self):
        self.keys = np.zeros(0, np.uint64)
        self.counts = np.zeros(0, np.int32)
        self._buf: dict[int, int] = {}

    def load(self, keys: np.ndarray) -> None:
        self.keys, counts = np.unique(keys.astype(np.uint64, copy=False), return_counts=True)
        self.counts = counts.astype(np.int32)
        self._buf.clear()

    def get(self, keys: np.ndarray) -> np.ndarray:
        out = np.zeros(len(keys), dtype=np.int32)
        if len(self.keys):
            pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            hit = self.keys[pos] == keys
            out[hit] = self.counts[pos[hit]]
        if self._buf:
            buf = self._buf
            out += np.fromiter((buf.get(k, 0) for k in keys.tolist()), dtype=np.int32, count=len(keys))
        return out

    def add(self, keys: np.ndarray) -> None:
        buf = self._buf
        for k in keys.tolist():
            buf[k] = buf.get(k, 0) + 1
        if len(buf) > max(4096, len(self.keys) // 16):
            self._merge()

    def _merge(self) -> None:
        extra = np.fromiter(self._buf.keys(), dtype=np.uint64, count=len(self._buf))
        extra_n = np.fromiter(self._buf.values(), dtype=np.int32, count=len(self._buf))
        keys = np.concatenate([self.keys, extra])
        counts = np.concatenate([self.counts, extra_n])
        self.keys, inverse = np.unique(keys, return_inverse=True)
        self.counts = np.bincount(inverse, weights=counts, minlength=len(self.keys)).astype(np.int32)
        self._buf.clear()


_BAND_MULT = (np.random.RandomState(7).randint(0, 2**63, 64, dtype=np.uint64) * np.uint64(2)) + np.uint64(1)


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint32 keys: each band's ``rows`` signature values hashed, salted with the band number.

    32 bits are plenty: a chance collision only adds a candidate, which the full signature rejects.
    """
    sigs = np.atleast_2d(sigs)
    n = sigs.shape[0]
    v = sigs[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = (v * _BAND_MULT[:rows]).sum(axis=2, dtype=np.uint64)
        h ^= np.arange(bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
    return (h & np.uint64(0xFFFFFFFF)).astype(np.uint32)


@functools.lru_cache(maxsize=None)
def lsh_band_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) for the threshold, as datasketch.MinHashLSH picks them, weighted towards
    recall (a numerical optimisation of about 0.3 s: computed once per process)."""
    from datasketch import MinHashLSH  # slow import (scipy): only where a Grouper is built

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.2, 0.8))
    return lsh.b, lsh.r
