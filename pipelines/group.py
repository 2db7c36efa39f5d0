"""Grouping of stored articles: near-duplicate copies (``cluster_id``) and stories (``story_id``).

Two questions are asked of every article, in the order it is stored:

* **Is it a copy of an earlier article?** (wire copies, syndication edits, trims, re-headlined
  copies, inserted "Read more" lines, datelines). The text is split into lines; every line gets
  the MinHash minima of its word shingles (datasketch's ``affine32`` scheme, hashed in one
  numpy batch). Lines that recur on other pages of the same host are the site's template
  (sidebars, cookie banners, ad cards) and are left out, so the article's signature is the
  element-wise minimum over its own lines only: the union of MinHash sets. Banded LSH over
  that signature finds candidates; the best one whose estimated Jaccard similarity reaches
  ``NEWS_DEDUP_THRESHOLD`` gives its cluster. Exact copies are caught first by content hash.
* **Which story does it report?** Copies join their original's story. Other articles are
  compared by TF-IDF over salient terms of the title and lead (stop words dropped, plurals
  folded, title words and capitalised names weighted up; IDF learned from the articles in
  the index) with a term-to-article inverted index; an article joins the story whose closest
  members (mean of the top ``_STORY_TOP_K``, published within ``NEWS_STORY_GAP_DAYS``) reach
  ``NEWS_STORY_THRESHOLD``, or starts a new one.

:func:`features` is the CPU-heavy, pure part; it runs in the extraction worker processes and
imports only numpy. :class:`Grouper` holds the in-memory indexes: :meth:`Grouper.assign` is
synchronous and does no I/O (query, then insert, so two copies in one crawl find each other);
:meth:`Grouper.persist` writes the compact state (signatures as raw ``uint32`` with their
scheme, ``num_perm``, seed and shingle size; line and term hashes) inside the store's
transaction; :meth:`Grouper.restore` rebuilds the indexes from it for the last
``NEWS_GROUP_WINDOW_DAYS`` without reading article text. Ids are ``c``/``s`` + 15 hex digits
of the sha1 of the group's first article URL, so they are stable across runs and regroups.

See docs/grouping.md for the measurements behind the defaults.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import re
import unicodedata
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

import numpy as np
from sqlite_utils.migrations import Migrations

from pipelines.textnorm import content_hash, words

logger = logging.getLogger(__name__)

__all__ = [
    "Assignment",
    "Features",
    "GROUP_MIGRATIONS",
    "Grouper",
    "features",
    "DEFAULTS",
]

SCHEME = "affine32"  # datasketch >= 2.0 permutation scheme of the signatures

#: setting name -> default; every setting Grouper.from_settings reads
DEFAULTS: dict[str, float | int] = {
    "NEWS_DEDUP_THRESHOLD": 0.4,  # estimated Jaccard of content shingles to call a copy
    "NEWS_DEDUP_NUM_PERM": 128,  # MinHash permutations (signature: 4 bytes each)
    "NEWS_DEDUP_SHINGLE": 4,  # words per shingle
    "NEWS_DEDUP_SEED": 1,  # MinHash permutation seed
    "NEWS_DEDUP_BOILERPLATE_PAGES": 2,  # a line on this many pages of a host is its template
    "NEWS_STORY_THRESHOLD": 0.30,  # TF-IDF cosine (mean over the closest members) to join a story
    "NEWS_STORY_GAP_DAYS": 3,  # members published further apart than this don't count
    "NEWS_STORY_LEAD_WORDS": 150,  # words of the text (after the title) that describe the story
    "NEWS_GROUP_WINDOW_DAYS": 30,  # days of stored articles kept in the indexes
}

_MIN_CONTENT_WORDS = 20  # fewer own words than this after removing template lines: keep them all
_STORY_TOP_K = 3  # a story's score: mean similarity of its K closest members
_TITLE_WEIGHT = 2.0
_NAME_WEIGHT = 1.5  # capitalised word not starting a sentence: a name
_NAME_BIGRAMS = 0.0  # weight of 'Supreme Court'-like pairs of capitalised words as extra terms
_MAX_SHINGLE = 16
_NO_DAY = np.iinfo(np.int32).min
_EPOCH = date(1970, 1, 1)
_SIG_CHUNK = 8192  # shingles hashed per numpy batch (bounds memory on very long texts)


# --------------------------------------------------------------------------- features


@dataclass(frozen=True)
class Features:
    """What :class:`Grouper` needs of one article; pure data, cheap to pickle.

    ``line_sigs[i]`` is the MinHash signature of line ``i``'s shingles; ``line_hashes[i]``
    identifies the line's normalised text (for template detection); ``terms`` are sorted
    32-bit ids of the story terms and ``term_weights`` their boosted counts (before IDF).
    """

    num_perm: int
    seed: int
    shingle: int
    lead_words: int
    content_hash: str
    n_words: int
    line_hashes: np.ndarray  # uint32 (n_lines,)
    line_words: np.ndarray  # uint32 (n_lines,)
    line_sigs: np.ndarray  # uint32 (n_lines, num_perm)
    terms: np.ndarray  # uint32 (n_terms,), sorted
    term_weights: np.ndarray  # float32 (n_terms,)


def features(
    title: str,
    text: str,
    *,
    num_perm: int = DEFAULTS["NEWS_DEDUP_NUM_PERM"],
    seed: int = DEFAULTS["NEWS_DEDUP_SEED"],
    shingle: int = DEFAULTS["NEWS_DEDUP_SHINGLE"],
    lead_words: int = DEFAULTS["NEWS_STORY_LEAD_WORDS"],
) -> Features:
    """Normalise ``text``, hash its shingles into per-line MinHash signatures and pick the story terms.

    Pure and picklable, so it can run in a process pool. When the crawler's settings change
    ``num_perm``, ``seed``, ``shingle`` or ``lead_words``, pass them (``Grouper.feature_kwargs``).
    """
    title = title or ""
    text = text or ""
    if not isinstance(title, str) or not isinstance(text, str):
        raise TypeError(f"features(title, text) takes strings, got {type(title).__name__} and {type(text).__name__}")
    _check_feature_params(num_perm, seed, shingle, lead_words)
    lines = _content_lines(title, text)
    n_words = sum(len(ws) for _, ws in lines)
    line_hashes = np.fromiter((_line_hash(key) for key, _ in lines), dtype=np.uint32, count=len(lines))
    line_words = np.fromiter((len(ws) for _, ws in lines), dtype=np.uint32, count=len(lines))
    line_sigs = _line_signatures([ws for _, ws in lines], shingle, num_perm, seed)
    terms, weights = story_terms(title, text, lead_words)
    return Features(
        num_perm=num_perm,
        seed=seed,
        shingle=shingle,
        lead_words=lead_words,
        content_hash=content_hash(text),
        n_words=n_words,
        line_hashes=line_hashes,
        line_words=line_words,
        line_sigs=line_sigs,
        terms=terms,
        term_weights=weights,
    )


def _check_feature_params(num_perm: int, seed: int, shingle: int, lead_words: int) -> None:
    if not isinstance(num_perm, int) or not 16 <= num_perm <= 1024:
        raise ValueError(f"num_perm={num_perm!r}: use an integer from 16 to 1024 (NEWS_DEDUP_NUM_PERM; 128 is the default)")
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed={seed!r}: use an integer from 0 to 2**32-1 (NEWS_DEDUP_SEED)")
    if not isinstance(shingle, int) or not 1 <= shingle <= _MAX_SHINGLE:
        raise ValueError(f"shingle={shingle!r}: use an integer from 1 to {_MAX_SHINGLE} words (NEWS_DEDUP_SHINGLE)")
    if not isinstance(lead_words, int) or lead_words < 10:
        raise ValueError(f"lead_words={lead_words!r}: use an integer of at least 10 (NEWS_STORY_LEAD_WORDS)")


def _content_lines(title: str, text: str) -> list[tuple[str, list[str]]]:
    """Distinct non-empty lines as (normalised text, words); a first line repeating the title is dropped."""
    title_key = " ".join(words(title))
    seen: set[str] = set()
    out: list[tuple[str, list[str]]] = []
    for raw in text.split("\n"):
        ws = words(raw)
        if not ws:
            continue
        key = " ".join(ws)
        if key in seen or (not out and key == title_key):
            continue
        seen.add(key)
        out.append((key, ws))
    return out


def _line_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=4).digest(), "little")


_WORD_HASHES: dict[str, int] = {}


def _word_hash(word: str) -> int:
    h = _WORD_HASHES.get(word)
    if h is None:
        if len(_WORD_HASHES) >= 500_000:  # a long-lived worker: keep memory flat
            _WORD_HASHES.clear()
        h = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
        _WORD_HASHES[word] = h
    return h


# odd 64-bit multipliers, one per position in a shingle (fixed forever: stored signatures depend on them)
_POSITION_MULT = (np.random.RandomState(20261123).randint(0, 2**63, _MAX_SHINGLE, dtype=np.uint64) * np.uint64(2)) + np.uint64(1)


def _shingle_hashes(lines: list[list[str]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of each line's k-word shingles (a shorter line is one shingle), and each line's first index."""
    sizes = [len(ws) for ws in lines]
    n = sum(sizes)
    if n == 0:
        return np.zeros(0, np.uint32), np.zeros(0, np.int64)
    wh = np.fromiter((_word_hash(w) for ws in lines for w in ws), dtype=np.uint64, count=n)
    size = np.asarray(sizes, dtype=np.int64)
    start = np.concatenate(([0], np.cumsum(size)[:-1]))
    end = np.repeat(start + size, size)  # per word: end of its line
    pos = np.arange(n, dtype=np.int64)
    acc = np.zeros(n, dtype=np.uint64)
    for j in range(k):
        idx = pos + j
        ok = idx < end
        acc += np.where(ok, wh[np.minimum(idx, n - 1)] * _POSITION_MULT[j], np.uint64(0))
    # a full window fits, or the line is shorter than k and this is its first word
    keep = (pos + k <= end) | ((pos == np.repeat(start, size)) & np.repeat(size < k, size))
    h = acc[keep]
    h32 = ((h >> np.uint64(32)) ^ h).astype(np.uint32)
    per_line = np.where(size < k, 1, size - k + 1)
    first = np.concatenate(([0], np.cumsum(per_line)[:-1]))
    return h32, first


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch's affine32 scheme applies it to input hashes."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


@functools.lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch.MinHash(num_perm, seed, scheme="affine32").permutations, without importing datasketch."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _minhash(h32: np.ndarray, starts: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """Per-segment MinHash signatures: rows of ``h32`` from ``starts[i]`` to the next start."""
    a, b = _permutations(num_perm, seed)
    out = np.empty((len(starts), num_perm), dtype=np.uint32)
    bounds = list(starts) + [len(h32)]
    i = 0
    with np.errstate(over="ignore"):
        while i < len(starts):
            j = i + 1  # segments [i, j) hashed together, up to _SIG_CHUNK shingles
            while j < len(starts) and bounds[j + 1] - bounds[i] <= _SIG_CHUNK:
                j += 1
            lo, hi = bounds[i], bounds[j]
            phv = _fmix32(h32[lo:hi])[:, None] * a + b
            out[i:j] = np.minimum.reduceat(phv, np.asarray(bounds[i:j]) - lo, axis=0)
            i = j
    return out


def _line_signatures(lines: list[list[str]], k: int, num_perm: int, seed: int) -> np.ndarray:
    if not lines:
        return np.zeros((0, num_perm), dtype=np.uint32)
    h32, first = _shingle_hashes(lines, k)
    return _minhash(h32, first, num_perm, seed)


# --------------------------------------------------------------------------- story terms

# function words and newsroom filler; written for this project
_STOPWORDS = frozenset(
    """
    a about above across after again against ago all almost along already also although always am among an and
    another any anyone anything are around as at away back be became because become been before being below
    between both but by came can cannot could did do does doing done down during each either else enough even
    ever every few for from further get gets getting go goes going gone got had has have having he her here hers
    herself him himself his how however i if in including inside instead into is it its itself just last least
    less let like made make makes making many may me might more most much must my myself near need needs neither
    never new next no nor not now of off often on once one only onto or other others our ours ourselves out over
    own per perhaps put rather really said same say saying says see seen several shall she should since so some
    something still such take than that the their theirs them themselves then there these they thing things this
    those though three through thus to told too took toward two under until up upon us use used very via was way
    we week weeks well were what whatever when where whether which while who whom whose why will with within
    without would year years yet you your yours yourself also according monday tuesday wednesday thursday friday
    saturday sunday today yesterday tomorrow mr mrs ms dr s t d ll re ve m don didn doesn isn wasn aren weren
    won wouldn couldn shouldn hasn haven hadn ain
    """.split()
)
_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?:;\"“”—–-]\s*$|^\s*$")


def _stem(word: str) -> str:
    """Fold common English plural endings (a deliberately light touch: names must survive)."""
    if len(word) > 4 and word.endswith("ies") and word[-4] not in "aeiou":
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is", "os", "as")):
        return word[:-1]
    return word


def _term_id(term: str) -> int:
    return zlib.crc32(term.encode("utf-8"))


def _add_terms(counts: dict[int, float], text: str, weight: float, limit: int | None) -> None:
    text = unicodedata.normalize("NFKC", text)
    taken = 0
    prev_end = 0
    prev_name: str | None = None  # previous token, if it was a capitalised content word
    for m in _TOKEN.finditer(text):
        if limit is not None and taken >= limit:
            break
        taken += 1
        token = m.group(0).replace("’", "'")
        if token.endswith("'s"):
            token = token[:-2]
        gap = text[prev_end : m.start()]
        sentence_start = prev_end == 0 or bool(_SENTENCE_END.search(gap))
        adjacent = prev_end > 0 and (gap == " " or gap == "-")
        prev_end = m.end()
        low = token.casefold()
        if len(low) < 2 or low in _STOPWORDS or low.isdigit() and len(low) < 3:
            prev_name = None
            continue
        stem = _stem(low)
        is_name = token[0].isupper()
        w = weight * (_NAME_WEIGHT if is_name and not sentence_start else 1.0)
        tid = _term_id(stem)
        counts[tid] = counts.get(tid, 0.0) + w
        if _NAME_BIGRAMS and is_name and prev_name is not None and adjacent:
            bid = _term_id(prev_name + " " + stem)
            counts[bid] = counts.get(bid, 0.0) + weight * _NAME_BIGRAMS
        prev_name = stem if is_name else None


def story_terms(title: str, text: str, lead_words: int = DEFAULTS["NEWS_STORY_LEAD_WORDS"]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted term ids and boosted counts of the title and the first ``lead_words`` words of the text."""
    counts: dict[int, float] = {}
    _add_terms(counts, title or "", _TITLE_WEIGHT, None)
    _add_terms(counts, text or "", 1.0, lead_words)
    if not counts:
        return np.zeros(0, np.uint32), np.zeros(0, np.float32)
    ids = np.fromiter(counts.keys(), dtype=np.uint32, count=len(counts))
    tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
    order = np.argsort(ids)
    return ids[order], tf[order]


# --------------------------------------------------------------------------- compact indexes


class _Grow:
    """A numpy array that grows by doubling (rows appended one at a time)."""

    def __init__(self, dtype, width: int | None = None, fill=0):
        self.fill = fill
        shape = (1024,) if width is None else (1024, width)
        self.data = np.full(shape, fill, dtype=dtype)
        self.n = 0

    def append(self, value) -> None:
        if self.n == len(self.data):
            more = np.full(self.data.shape, self.fill, dtype=self.data.dtype)
            self.data = np.concatenate([self.data, more])
        self.data[self.n] = value
        self.n += 1

    def extend(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        if need > len(self.data):
            cap = max(need, 2 * len(self.data))
            more = np.full((cap - len(self.data),) + self.data.shape[1:], self.fill, dtype=self.data.dtype)
            self.data = np.concatenate([self.data, more])
        self.data[self.n : need] = values
        self.n = need

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.n]


class _Postings:
    """uint64 key -> (row, weight) postings: a sorted numpy segment plus a small dict of recent adds.

    Compact (12 bytes a posting) and fast to bulk-load; the dict is merged into the sorted
    segment when it outgrows a quarter of it.
    """

    def __init__(self, weighted: bool):
        self.weighted = weighted
        self.keys = np.zeros(0, np.uint64)
        self.rows = np.zeros(0, np.int32)
        self.weights = np.zeros(0, np.float32)
        self._buf: dict[int, list] = {}
        self._buffered = 0

    def __len__(self) -> int:
        return len(self.keys) + self._buffered

    def load(self, keys: np.ndarray, rows: np.ndarray, weights: np.ndarray | None = None) -> None:
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order].astype(np.uint64, copy=False)
        self.rows = rows[order].astype(np.int32, copy=False)
        self.weights = weights[order].astype(np.float32, copy=False) if self.weighted else self.weights
        self._buf.clear()
        self._buffered = 0

    def add(self, keys: Iterable[int], row: int, weights: Iterable[float] | None = None) -> None:
        buf = self._buf
        if self.weighted:
            for key, w in zip(keys, weights):
                entry = buf.get(key)
                if entry is None:
                    buf[key] = [[row], [w]]
                else:
                    entry[0].append(row)
                    entry[1].append(w)
                self._buffered += 1
        else:
            for key in keys:
                entry = buf.get(key)
                if entry is None:
                    buf[key] = [row]
                else:
                    entry.append(row)
                self._buffered += 1
        if self._buffered > max(50_000, len(self.keys) // 4):
            self._merge()

    def _merge(self) -> None:
        keys, rows, weights = [self.keys], [self.rows], [self.weights]
        for key, entry in self._buf.items():
            r = entry[0] if self.weighted else entry
            keys.append(np.full(len(r), key, dtype=np.uint64))
            rows.append(np.asarray(r, dtype=np.int32))
            if self.weighted:
                weights.append(np.asarray(entry[1], dtype=np.float32))
        self.load(np.concatenate(keys), np.concatenate(rows), np.concatenate(weights) if self.weighted else None)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, weights, and the position in ``keys`` of the key each posting matched."""
        lo = np.searchsorted(self.keys, keys, "left")
        lengths = np.searchsorted(self.keys, keys, "right") - lo
        total = int(lengths.sum())
        # positions of every matching posting, without a Python loop over keys
        which = np.repeat(np.arange(len(keys), dtype=np.int32), lengths)
        pos = np.arange(total, dtype=np.int64) + np.repeat(lo - (np.cumsum(lengths) - lengths), lengths)
        rows = self.rows[pos]
        weights = self.weights[pos] if self.weighted else np.zeros(0, np.float32)
        if self._buf:
            b_rows: list[int] = []
            b_weights: list[float] = []
            b_which: list[int] = []
            for i, key in enumerate(keys.tolist()):
                entry = self._buf.get(key)
                if entry is None:
                    continue
                r = entry[0] if self.weighted else entry
                b_rows.extend(r)
                b_which.extend([i] * len(r))
                if self.weighted:
                    b_weights.extend(entry[1])
            if b_rows:
                rows = np.concatenate([rows, np.array(b_rows, dtype=np.int32)])
                which = np.concatenate([which, np.array(b_which, dtype=np.int32)])
                if self.weighted:
                    weights = np.concatenate([weights, np.array(b_weights, dtype=np.float32)])
        return rows, weights, which


class _Counts:
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
        if len(buf) > max(50_000, len(self.keys) // 4):
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


def _band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64 keys: each band's ``rows`` signature values hashed, salted with the band number."""
    sigs = np.atleast_2d(sigs)
    n = sigs.shape[0]
    v = sigs[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = (v * _BAND_MULT[:rows]).sum(axis=2, dtype=np.uint64)
        h ^= np.arange(bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
    return h


def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) for the threshold, as datasketch.MinHashLSH picks them, weighted towards recall."""
    from datasketch import MinHashLSH  # slow import (scipy): only where a Grouper is built

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.2, 0.8))
    return lsh.b, lsh.r


# --------------------------------------------------------------------------- dates


def _parse_day(value: str | None) -> tuple[int | None, str | None]:
    """(days since 1970-01-01, normalised ISO string) of a date or datetime string; (None, None) if unreadable."""
    if not value:
        return None, None
    value = str(value).strip()
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value or " " in value else None
    except ValueError:
        dt = None
    if dt is not None:
        if dt.tzinfo is not None:
            dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
        return (dt.date() - _EPOCH).days, dt.isoformat(timespec="seconds")
    m = re.match(r"(\d{4})-(\d{2})-(\d{2})", value)
    if not m:
        return None, None
    try:
        d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None, None
    return (d - _EPOCH).days, d.isoformat()


# --------------------------------------------------------------------------- grouper


@dataclass(frozen=True)
class Assignment:
    """The groups of one article, as :meth:`Grouper.assign` decided them.

    ``duplicate_of`` is the URL of the earlier copy it matched (``similarity`` its estimated
    Jaccard similarity), ``story_similarity`` the score of the story it joined (1.0 when it
    followed its copy there); both are 0.0 when the article started a new group.
    """

    cluster_id: str
    story_id: str
    duplicate_of: str | None = None
    similarity: float = 0.0
    story_similarity: float = 0.0
    new_cluster: bool = True
    new_story: bool = True
    record: tuple = field(default=(), repr=False, compare=False)  # the row persist() writes


def _group_id(prefix: str, url: str) -> str:
    return prefix + hashlib.sha1(url.encode("utf-8")).hexdigest()[:15]


def _setting(settings: Any, name: str, kind: type) -> float | int:
    """``settings.getfloat/getint(name, default)`` for Scrapy settings, or a plain mapping's value."""
    default = DEFAULTS[name]
    if settings is None:
        return default
    getter = getattr(settings, "getfloat" if kind is float else "getint", None)
    try:
        if getter is not None and not isinstance(settings, Mapping):
            return getter(name, default)
        value = settings.get(name, default)
        if value is None or value == "":
            return default
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={settings.get(name)!r} is not a valid {kind.__name__}: set it like {name} = {default!r}") from None


_COLUMNS = (
    "url",
    "cluster_id",
    "story_id",
    "hostname",
    "title",
    "seen",
    "seen_day",
    "published_day",
    "chash",
    "words",
    "scheme",
    "num_perm",
    "seed",
    "shingle",
    "signature",
    "lines",
    "terms",
    "term_tf",
)


class Grouper:
    """In-memory near-duplicate and story indexes over the recent articles of the store.

    Build it with :meth:`from_settings`, call :meth:`restore` once with the store, then
    :meth:`assign` each new article (synchronously, in arrival order) and :meth:`persist` the
    assignments in the same transaction that stores the articles.
    """

    def __init__(
        self,
        *,
        dedup_threshold: float = DEFAULTS["NEWS_DEDUP_THRESHOLD"],
        num_perm: int = DEFAULTS["NEWS_DEDUP_NUM_PERM"],
        shingle: int = DEFAULTS["NEWS_DEDUP_SHINGLE"],
        seed: int = DEFAULTS["NEWS_DEDUP_SEED"],
        boilerplate_pages: int = DEFAULTS["NEWS_DEDUP_BOILERPLATE_PAGES"],
        story_threshold: float = DEFAULTS["NEWS_STORY_THRESHOLD"],
        story_gap_days: int = DEFAULTS["NEWS_STORY_GAP_DAYS"],
        lead_words: int = DEFAULTS["NEWS_STORY_LEAD_WORDS"],
        window_days: int = DEFAULTS["NEWS_GROUP_WINDOW_DAYS"],
        lsh_params: tuple[int, int] | None = None,
        now: datetime | None = None,
    ):
        if not 0.0 < dedup_threshold <= 1.0:
            raise ValueError(f"dedup_threshold={dedup_threshold!r}: NEWS_DEDUP_THRESHOLD is a Jaccard similarity in (0, 1], e.g. 0.5")
        if not 0.0 < story_threshold <= 1.0:
            raise ValueError(f"story_threshold={story_threshold!r}: NEWS_STORY_THRESHOLD is a cosine similarity in (0, 1], e.g. 0.3")
        _check_feature_params(num_perm, seed, shingle, lead_words)
        if not isinstance(boilerplate_pages, int) or boilerplate_pages < 2:
            raise ValueError(f"boilerplate_pages={boilerplate_pages!r}: NEWS_DEDUP_BOILERPLATE_PAGES must be an integer >= 2 (a line must recur to be template)")
        if not isinstance(story_gap_days, int) or story_gap_days < 0:
            raise ValueError(f"story_gap_days={story_gap_days!r}: NEWS_STORY_GAP_DAYS must be an integer >= 0")
        if not isinstance(window_days, int) or window_days < 1:
            raise ValueError(f"window_days={window_days!r}: NEWS_GROUP_WINDOW_DAYS must be an integer >= 1")
        self.dedup_threshold = float(dedup_threshold)
        self.num_perm = num_perm
        self.shingle = shingle
        self.seed = seed
        self.boilerplate_pages = boilerplate_pages
        self.story_threshold = float(story_threshold)
        self.story_gap_days = story_gap_days
        self.lead_words = lead_words
        self.window_days = window_days
        self._now = now
        if lsh_params is None:
            lsh_params = _lsh_params(self.dedup_threshold, num_perm)
        self.bands, self.band_rows = lsh_params
        if self.bands < 1 or self.band_rows < 1 or self.bands * self.band_rows > num_perm:
            raise ValueError(f"lsh_params={lsh_params!r}: need bands * rows <= num_perm ({num_perm})")
        _check_datasketch_scheme(num_perm, seed)
        self._reset()

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "Grouper":
        """Build from Scrapy settings (``getfloat``/``getint``) or any mapping of NEWS_* names (see DEFAULTS)."""
        kwargs = dict(
            dedup_threshold=_setting(settings, "NEWS_DEDUP_THRESHOLD", float),
            num_perm=_setting(settings, "NEWS_DEDUP_NUM_PERM", int),
            shingle=_setting(settings, "NEWS_DEDUP_SHINGLE", int),
            seed=_setting(settings, "NEWS_DEDUP_SEED", int),
            boilerplate_pages=_setting(settings, "NEWS_DEDUP_BOILERPLATE_PAGES", int),
            story_threshold=_setting(settings, "NEWS_STORY_THRESHOLD", float),
            story_gap_days=_setting(settings, "NEWS_STORY_GAP_DAYS", int),
            lead_words=_setting(settings, "NEWS_STORY_LEAD_WORDS", int),
            window_days=_setting(settings, "NEWS_GROUP_WINDOW_DAYS", int),
        )
        kwargs.update(overrides)
        return cls(**kwargs)

    # ---- features with this grouper's parameters

    @property
    def feature_kwargs(self) -> dict[str, int]:
        """Keyword arguments of :func:`features` matching this grouper (pass them to the worker pool)."""
        return {"num_perm": self.num_perm, "seed": self.seed, "shingle": self.shingle, "lead_words": self.lead_words}

    def features(self, title: str, text: str) -> Features:
        return features(title, text, **self.feature_kwargs)

    # ---- state

    def _reset(self) -> None:
        self._urls: list[str] = []
        self._row_of: dict[str, int] = {}
        self._sigs = _Grow(np.uint32, self.num_perm)
        self._cluster = _Grow(np.int32)
        self._story = _Grow(np.int32)
        self._pub_day = _Grow(np.int32, fill=_NO_DAY)
        self._clusters: list[str] = []
        self._cluster_of: dict[str, int] = {}
        self._stories: list[str] = []
        self._story_of: dict[str, int] = {}
        self._story_size = _Grow(np.int32)
        self._hosts: dict[str, int] = {}
        self._by_hash: dict[int, int] = {}
        self._lsh = _Postings(weighted=False)
        self._lines = _Counts()
        self._df = _Counts()
        self._n_docs = 0
        self._postings = _Postings(weighted=True)
        self._df_frozen = False

    def __len__(self) -> int:
        return len(self._urls)

    def _today(self) -> datetime:
        return self._now or datetime.now(timezone.utc).replace(tzinfo=None)

    def _host_id(self, hostname: str) -> int:
        hid = self._hosts.get(hostname)
        if hid is None:
            hid = self._hosts[hostname] = len(self._hosts) + 1
        return hid

    def _group_index(self, gid: str, names: list[str], index: dict[str, int], sizes: _Grow | None = None) -> int:
        i = index.get(gid)
        if i is None:
            i = index[gid] = len(names)
            names.append(gid)
            if sizes is not None:
                sizes.append(0)
        return i

    # ---- assign

    def assign(self, url: str, title: str | None, published: str | None, hostname: str | None, feats: Features) -> Assignment:
        """Groups of a new article: query the indexes, then add it to them. Synchronous, no I/O."""
        if not url or not isinstance(url, str):
            raise ValueError(f"url={url!r}: assign() needs the article's (canonical) URL as its key")
        if not isinstance(feats, Features):
            raise TypeError(f"feats is a {type(feats).__name__}: pass the result of pipelines.group.features(title, text)")
        if (feats.num_perm, feats.seed, feats.shingle) != (self.num_perm, self.seed, self.shingle):
            raise ValueError(
                f"features were computed with num_perm={feats.num_perm}, seed={feats.seed}, shingle={feats.shingle} but this "
                f"Grouper uses {self.num_perm}, {self.seed}, {self.shingle}: call features(title, text, **grouper.feature_kwargs)"
            )
        row = self._row_of.get(url)
        if row is not None:  # stored again (an update): it keeps its groups
            return Assignment(self._clusters[self._cluster.data[row]], self._stories[self._story.data[row]], new_cluster=False, new_story=False)
        hostname = hostname or ""
        pub_day, pub_iso = _parse_day(published)
        now = self._today()
        seen_iso = pub_iso if pub_iso and pub_day <= (now.date() - _EPOCH).days + 1 else now.isoformat(timespec="seconds")
        seen_day = _parse_day(seen_iso)[0]
        host = self._host_id(hostname)

        sig, has_text = self._content_signature(host, feats)
        chash = int(feats.content_hash[:15], 16) if has_text else 0
        match, similarity = self._find_copy(sig, chash) if has_text else (None, 0.0)
        vector = self._weigh(feats, count=True)

        story_sim, new_story = 0.0, False
        if match is not None:  # a copy follows its original into its story
            cluster = int(self._cluster.data[match])
            story = int(self._story.data[match])
            story_sim = 1.0
        else:
            cluster = self._group_index(_group_id("c", url), self._clusters, self._cluster_of)
            story, story_sim = self._find_story(feats.terms, vector, pub_day)
            if story is None:
                story = self._group_index(_group_id("s", url), self._stories, self._story_of, self._story_size)
                new_story, story_sim = True, 0.0

        self._insert(url, sig if has_text else None, chash, cluster, story, pub_day, feats.terms, vector)
        record = (
            url,
            self._clusters[cluster],
            self._stories[story],
            hostname,
            title or "",
            seen_iso,
            seen_day,
            pub_day,
            chash,
            feats.n_words,
            SCHEME,
            self.num_perm,
            self.seed,
            self.shingle,
            sig.astype("<u4").tobytes() if has_text else None,
            feats.line_hashes.astype("<u4").tobytes(),
            feats.terms.astype("<u4").tobytes(),
            feats.term_weights.astype("<f2").tobytes(),
        )
        return Assignment(
            cluster_id=self._clusters[cluster],
            story_id=self._stories[story],
            duplicate_of=self._urls[match] if match is not None else None,
            similarity=round(float(similarity), 4),
            story_similarity=round(float(story_sim), 4),
            new_cluster=match is None,
            new_story=new_story,
            record=record,
        )

    def _content_signature(self, host: int, feats: Features) -> tuple[np.ndarray, bool]:
        """Signature of the article's own lines (template lines of its host left out), and whether it has any."""
        n = len(feats.line_hashes)
        if n == 0:
            return np.full(self.num_perm, np.iinfo(np.uint32).max, dtype=np.uint32), False
        keys = (np.uint64(host) << np.uint64(32)) | feats.line_hashes.astype(np.uint64)
        before = self._lines.get(keys)
        own = before < self.boilerplate_pages - 1
        if not own.all() and int(feats.line_words[own].sum()) < _MIN_CONTENT_WORDS:
            own[:] = True  # nearly all of it is on other pages of the host: a same-site copy, compare it whole
        self._lines.add(keys)
        return feats.line_sigs[own].min(axis=0), True

    def _find_copy(self, sig: np.ndarray, chash: int) -> tuple[int | None, float]:
        row = self._by_hash.get(chash)
        if row is not None:
            return row, 1.0
        if not len(self._lsh):
            return None, 0.0
        cands, _, _ = self._lsh.lookup(_band_keys(sig, self.bands, self.band_rows)[0])
        if not len(cands):
            return None, 0.0
        cands = np.unique(cands)
        sims = (self._sigs.data[cands] == sig).sum(axis=1) / self.num_perm
        best = int(np.argmax(sims))  # ties: the oldest row
        if sims[best] >= self.dedup_threshold:
            return int(cands[best]), float(sims[best])
        return None, 0.0

    def _weigh(self, feats: Features, count: bool) -> np.ndarray:
        """The article's unit TF-IDF vector over ``feats.terms`` (counting it in the document frequencies first)."""
        if not len(feats.terms):
            return np.zeros(0, np.float32)
        keys = feats.terms.astype(np.uint64)
        if count and not self._df_frozen:
            self._df.add(keys)
            self._n_docs += 1
        df = self._df.get(keys)
        idf = np.log((max(self._n_docs, 1) + 1) / (df + 1.0)) + 1.0
        w = np.maximum((1.0 + np.log(np.maximum(feats.term_weights, 1e-3))) * idf, 0.0)
        norm = float(np.sqrt((w * w).sum()))
        return (w / norm if norm > 0 else w).astype(np.float32)

    def _find_story(self, terms: np.ndarray, vector: np.ndarray, pub_day: int | None) -> tuple[int | None, float]:
        """The best story for this vector and its score, or (None, best score) below the threshold."""
        if not len(terms):
            return None, 0.0
        rows, weights, which = self._postings.lookup(terms.astype(np.uint64))
        if not len(rows):
            return None, 0.0
        contrib = weights * vector[which]
        if pub_day is not None:
            days = self._pub_day.data[rows]
            ok = (days == _NO_DAY) | (np.abs(days - pub_day) <= self.story_gap_days)
            rows, contrib = rows[ok], contrib[ok]
            if not len(rows):
                return None, 0.0
        docs, inverse = np.unique(rows, return_inverse=True)
        scores = np.bincount(inverse, weights=contrib)
        stories = self._story.data[docs]
        # each story: mean of its top-K member scores (members sharing no term score 0)
        order = np.lexsort((-scores, stories))
        s_sorted, sc_sorted = stories[order], scores[order]
        idx = np.arange(len(order))
        first = np.r_[True, s_sorted[1:] != s_sorted[:-1]]
        rank = idx - np.maximum.accumulate(np.where(first, idx, 0))
        keep = rank < _STORY_TOP_K
        uniq, inv = np.unique(s_sorted[keep], return_inverse=True)
        sums = np.bincount(inv, weights=sc_sorted[keep])
        final = sums / np.maximum(np.minimum(self._story_size.data[uniq], _STORY_TOP_K), 1)
        best = int(np.argmax(final))
        if final[best] >= self.story_threshold:
            return int(uniq[best]), float(final[best])
        return None, float(final[best])

    def _insert(self, url, sig, chash, cluster, story, pub_day, terms, vector) -> int:
        row = len(self._urls)
        self._urls.append(url)
        self._row_of[url] = row
        self._cluster.append(cluster)
        self._story.append(story)
        self._story_size.data[story] += 1
        self._pub_day.append(_NO_DAY if pub_day is None else pub_day)
        if sig is None:
            self._sigs.append(np.iinfo(np.uint32).max)
        else:
            self._sigs.append(sig)
            self._lsh.add(_band_keys(sig, self.bands, self.band_rows)[0].tolist(), row)
            self._by_hash.setdefault(chash, row)
        if len(terms):
            self._postings.add(terms.tolist(), row, vector.tolist())
        return row

    def learn_idf(self, terms: Iterable[np.ndarray]) -> None:
        """Batch mode: document frequencies from a whole corpus up front (then frozen), instead of as articles arrive."""
        arrays = [np.asarray(t, dtype=np.uint64) for t in terms]
        self._df.load(np.concatenate(arrays) if arrays else np.zeros(0, np.uint64))
        self._n_docs = len(arrays)
        self._df_frozen = True

    # ---- persistence

    def persist(self, db, rows: list[tuple[str, Assignment]]) -> None:
        """Write the assignments' compact state and refresh their ``clusters`` and ``stories`` rows.

        Call it inside the transaction that stored the articles (it opens none of its own).
        """
        records = [a.record for _, a in rows if a.record]
        if not records:
            return
        placeholders = ", ".join("?" for _ in _COLUMNS)
        db.conn.executemany(
            f"INSERT OR REPLACE INTO group_articles ({', '.join(_COLUMNS)}) VALUES ({placeholders})", records
        )
        refresh_groups(db, {r[1] for r in records}, {r[2] for r in records})

    def restore(self, db) -> None:
        """Rebuild the indexes from ``group_articles`` rows seen within the window (no article text is read)."""
        if "group_articles" not in db.table_names():
            GROUP_MIGRATIONS.apply(db)
        self._reset()
        since = (self._today().date() - _EPOCH).days - self.window_days
        cur = db.conn.execute(
            "SELECT url, cluster_id, story_id, hostname, published_day, chash, scheme, num_perm, seed, shingle, "
            "signature, lines, terms, term_tf FROM group_articles WHERE seen_day >= ? ORDER BY rowid",
            [since],
        )
        data = cur.fetchall()
        if not data:
            return
        (urls, cids, sids, hosts, pdays, chashes, schemes, perms, seeds, shingles, sigs, lines, terms, tfs) = zip(*data)
        n = len(urls)
        self._urls = list(urls)
        self._row_of = {u: i for i, u in enumerate(urls)}
        cluster_idx = np.fromiter((self._group_index(c, self._clusters, self._cluster_of) for c in cids), np.int32, n)
        story_idx = np.fromiter((self._group_index(s, self._stories, self._story_of) for s in sids), np.int32, n)
        self._cluster.extend(cluster_idx)
        self._story.extend(story_idx)
        self._story_size.extend(np.bincount(story_idx, minlength=len(self._stories)).astype(np.int32))
        self._pub_day.extend(np.fromiter((_NO_DAY if d is None else d for d in pdays), np.int32, n))
        host_idx = np.fromiter((self._host_id(h or "") for h in hosts), np.uint64, n)

        # near-duplicate index: only signatures made with this grouper's parameters
        params = (SCHEME, self.num_perm, self.seed, self.shingle)
        ok = np.fromiter(
            ((s, p, sd, sh) == params and g is not None for s, p, sd, sh, g in zip(schemes, perms, seeds, shingles, sigs)), bool, n
        )
        sig_arr = np.full((n, self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        if ok.any():
            good = np.flatnonzero(ok)
            sig_arr[good] = np.frombuffer(b"".join(sigs[i] for i in good), dtype="<u4").reshape(len(good), self.num_perm)
            keys = _band_keys(sig_arr[good], self.bands, self.band_rows)
            self._lsh.load(keys.ravel(), np.repeat(good.astype(np.int32), self.bands))
            for i in good[::-1].tolist():  # the oldest row wins
                self._by_hash[chashes[i]] = i
        self._sigs.extend(sig_arr)
        if (~ok).any():
            logger.warning(
                "%d stored article(s) have signatures made with other NEWS_DEDUP_* settings (or none): they are "
                "left out of near-duplicate matching; run `python -m pipelines.cluster regroup --db FILE` to recompute",
                int((~ok).sum()),
            )

        # template lines per host
        line_lens = np.fromiter((len(b or b"") // 4 for b in lines), np.int64, n)
        all_lines = np.frombuffer(b"".join(b or b"" for b in lines), dtype="<u4").astype(np.uint64)
        self._lines.load((np.repeat(host_idx, line_lens) << np.uint64(32)) | all_lines)

        # story index: document frequencies, then each article's TF-IDF vector
        term_lens = np.fromiter((len(b or b"") // 4 for b in terms), np.int64, n)
        all_terms = np.frombuffer(b"".join(b or b"" for b in terms), dtype="<u4").astype(np.uint64)
        all_tf = np.frombuffer(b"".join(b or b"" for b in tfs), dtype="<f2").astype(np.float32)
        self._df.load(all_terms)
        self._n_docs = n
        if len(all_terms):
            pos = np.searchsorted(self._df.keys, all_terms)
            idf = np.log((n + 1) / (self._df.counts[pos] + 1.0)) + 1.0
            w = np.maximum((1.0 + np.log(np.maximum(all_tf, 1e-3))) * idf, 0.0)
            doc = np.repeat(np.arange(n, dtype=np.int32), term_lens)
            norms = np.sqrt(np.bincount(doc, weights=w * w, minlength=n))
            w = w / np.where(norms > 0, norms, 1.0)[doc]
            self._postings.load(all_terms, doc, w.astype(np.float32))
        logger.info(
            "Grouping index restored: %d article(s) from the last %d days, %d cluster(s), %d stor(ies)",
            n, self.window_days, len(self._clusters), len(self._stories),
        )


def refresh_groups(db, cluster_ids: Iterable[str], story_ids: Iterable[str]) -> None:
    """Recount the ``clusters`` and ``stories`` rows of these ids from ``group_articles``."""
    cluster_ids, story_ids = sorted(set(cluster_ids)), sorted(set(story_ids))
    for chunk in _chunks(cluster_ids, 500):
        marks = ", ".join("?" for _ in chunk)
        db.conn.execute(
            f"""
            INSERT INTO clusters (id, story_id, first_seen, last_seen, size, distinct_sites, representative_url)
            SELECT cluster_id, MAX(story_id), MIN(seen), MAX(seen), COUNT(*), COUNT(DISTINCT hostname),
                   (SELECT g2.url FROM group_articles g2 WHERE g2.cluster_id = g.cluster_id ORDER BY g2.rowid LIMIT 1)
            FROM group_articles g WHERE cluster_id IN ({marks}) GROUP BY cluster_id
            ON CONFLICT(id) DO UPDATE SET story_id = excluded.story_id, first_seen = excluded.first_seen,
                last_seen = excluded.last_seen, size = excluded.size, distinct_sites = excluded.distinct_sites
            """,
            chunk,
        )
    for chunk in _chunks(story_ids, 500):
        marks = ", ".join("?" for _ in chunk)
        db.conn.execute(
            f"""
            INSERT INTO stories (id, title, representative_url, first_seen, last_seen, article_count, cluster_count, distinct_sites)
            SELECT g.story_id, r.title, r.url, MIN(g.seen), MAX(g.seen), COUNT(*), COUNT(DISTINCT g.cluster_id),
                   COUNT(DISTINCT g.hostname)
            FROM group_articles g
            JOIN group_articles r ON r.rowid = (SELECT g2.rowid FROM group_articles g2 WHERE g2.story_id = g.story_id ORDER BY g2.rowid LIMIT 1)
            WHERE g.story_id IN ({marks}) GROUP BY g.story_id
            ON CONFLICT(id) DO UPDATE SET first_seen = excluded.first_seen, last_seen = excluded.last_seen,
                article_count = excluded.article_count, cluster_count = excluded.cluster_count,
                distinct_sites = excluded.distinct_sites
            """,
            chunk,
        )


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


@functools.lru_cache(maxsize=8)
def _check_datasketch_scheme(num_perm: int, seed: int) -> None:
    """Fail loudly if the installed datasketch no longer makes the signatures computed here."""
    from datasketch import MinHash

    m = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME)
    a, b = _permutations(num_perm, seed)
    if not (np.array_equal(m.permutations[0], a) and np.array_equal(m.permutations[1], b)):
        raise RuntimeError(
            f"datasketch's {SCHEME} permutations differ from pipelines.group's (datasketch upgraded?): "
            "pin datasketch to a 2.x release that matches, or update _permutations()"
        )


# --------------------------------------------------------------------------- schema

GROUP_MIGRATIONS = Migrations("news-group")


@GROUP_MIGRATIONS()
def m001_group_tables(db) -> None:
    db["group_articles"].create(
        {
            "url": str,  # articles.url
            "cluster_id": str,
            "story_id": str,
            "hostname": str,
            "title": str,
            "seen": str,  # published date/time (UTC, ISO) if plausible, else when it was grouped
            "seen_day": int,  # days since 1970-01-01 of `seen`: the window of restore()
            "published_day": int,  # days since 1970-01-01 of the published date, NULL if unknown
            "chash": int,  # first 60 bits of the content hash
            "words": int,
            "scheme": str,  # datasketch MinHash permutation scheme of `signature`
            "num_perm": int,
            "seed": int,
            "shingle": int,  # words per shingle
            "signature": bytes,  # MinHash of the article's own lines: num_perm little-endian uint32
            "lines": bytes,  # 32-bit hashes of its normalised lines (template detection), uint32 LE
            "terms": bytes,  # sorted 32-bit story term ids, uint32 LE
            "term_tf": bytes,  # their boosted counts, float16 LE
        },
        pk="url",
    )
    db["group_articles"].create_index(["seen_day"])
    db["group_articles"].create_index(["cluster_id"])
    db["group_articles"].create_index(["story_id"])
    db["clusters"].create(
        {
            "id": str,
            "story_id": str,
            "first_seen": str,
            "last_seen": str,
            "size": int,
            "distinct_sites": int,
            "representative_url": str,  # the first article of the group
        },
        pk="id",
    )
    db["clusters"].create_index(["last_seen"])
    db["clusters"].create_index(["story_id"])
    db["stories"].create(
        {
            "id": str,
            "title": str,  # title of its representative (first) article
            "representative_url": str,
            "first_seen": str,
            "last_seen": str,
            "article_count": int,
            "cluster_count": int,
            "distinct_sites": int,
        },
        pk="id",
    )
    db["stories"].create_index(["last_seen"])
