"""Per-article grouping features: what pipelines.group needs of one article, computed in the extraction workers.

:func:`features` is the CPU-heavy, pure part of grouping; it runs in the extraction worker
processes and imports only numpy. Two sets of features:

* **For near-duplicates**: the text is split into lines; every line gets the MinHash minima
  of its word shingles (datasketch's ``affine32`` scheme, computed in one numpy batch;
  :func:`check_datasketch_scheme` checks the permutations against ``datasketch.MinHash``),
  and a hash of its normalised text (for template detection).
* **For stories**: :func:`story_terms`, the title (counted twice) and the first
  ``NEWS_STORY_LEAD_WORDS`` words, stop words dropped and plurals folded, hashed to 32-bit ids
  with their counts (the IDF is the grouper's).

See docs/grouping.md for the measurements behind the defaults.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
import zlib
from dataclasses import dataclass

import numpy as np

from pipelines.textnorm import content_hash, words

__all__ = [
    "DEFAULT_LEAD_WORDS",
    "DEFAULT_NUM_PERM",
    "DEFAULT_SEED",
    "DEFAULT_SHINGLE",
    "Features",
    "SCHEME",
    "check_datasketch_scheme",
    "check_feature_params",
    "features",
    "line_signatures",
    "shingle_hashes",
    "story_terms",
]

SCHEME = "affine32"  # datasketch >= 2.0 permutation scheme of the signatures

# defaults of the feature parameters (and of their settings in pipelines.group.DEFAULTS)
DEFAULT_NUM_PERM = 128  # MinHash permutations (signature: 4 bytes each)
DEFAULT_SHINGLE = 4  # words per shingle
DEFAULT_SEED = 1  # MinHash permutation seed
DEFAULT_LEAD_WORDS = 200  # words of the text (after the title) that describe the story

_TITLE_WEIGHT = 2.0
_NAME_WEIGHT = 1.0  # weight of a capitalised word not starting a sentence (1.5 and 2.0 measured worse)
_MAX_SHINGLE = 16
_SIG_CHUNK = 8192  # shingles hashed per numpy batch (bounds memory on very long texts)


# --------------------------------------------------------------------------- features


@dataclass(frozen=True)
class Features:
    """What :class:`Grouper` needs of one article; pure data, cheap to pickle.

    ``line_sigs[i]`` is the MinHash signature of line ``i``'s shingles; ``line_hashes[i]``
    identifies the line's normalised text (for template detection); ``terms`` are the 32-bit
    ids of the story terms in order of first appearance and ``term_weights`` their boosted
    counts (before IDF).
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
    terms: np.ndarray  # uint32 (n_terms,), in order of first appearance
    term_weights: np.ndarray  # float32 (n_terms,)


def features(
    title: str,
    text: str,
    *,
    num_perm: int = DEFAULT_NUM_PERM,
    seed: int = DEFAULT_SEED,
    shingle: int = DEFAULT_SHINGLE,
    lead_words: int = DEFAULT_LEAD_WORDS,
) -> Features:
    """Normalise ``text``, hash its shingles into per-line MinHash signatures and pick the story terms.

    Pure and picklable, so it can run in a process pool. When the crawler's settings change
    ``num_perm``, ``seed``, ``shingle`` or ``lead_words``, pass them (``Grouper.feature_kwargs``).
    """
    title = title or ""
    text = text or ""
    if not isinstance(title, str) or not isinstance(text, str):
        raise TypeError(f"features(title, text) takes strings, got {type(title).__name__} and {type(text).__name__}")
    check_feature_params(num_perm, seed, shingle, lead_words)
    lines = _content_lines(title, text)
    n_words = sum(len(ws) for _, ws in lines)
    line_hashes = np.fromiter((_line_hash(key) for key, _ in lines), dtype=np.uint32, count=len(lines))
    line_words = np.fromiter((len(ws) for _, ws in lines), dtype=np.uint32, count=len(lines))
    line_sigs = line_signatures([ws for _, ws in lines], shingle, num_perm, seed)
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


def check_feature_params(num_perm: int, seed: int, shingle: int, lead_words: int) -> None:
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


def _word_hashes(flat: list[str]) -> np.ndarray:
    """Stable 64-bit hashes of words (blake2b), cached per worker process."""
    cache = _WORD_HASHES
    if len(cache) > 500_000:  # a long-lived worker: keep memory flat
        cache.clear()
    for w in set(flat).difference(cache):
        cache[w] = int.from_bytes(hashlib.blake2b(w.encode("utf-8"), digest_size=8).digest(), "little")
    return np.fromiter(map(cache.__getitem__, flat), dtype=np.uint64, count=len(flat))


# odd 64-bit multipliers, one per position in a shingle (fixed forever: stored signatures depend on them)
_POSITION_MULT = (np.random.RandomState(20261123).randint(0, 2**63, _MAX_SHINGLE, dtype=np.uint64) * np.uint64(2)) + np.uint64(1)


def shingle_hashes(lines: list[list[str]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of each line's k-word shingles (a shorter line is one shingle), and each line's first index."""
    sizes = [len(ws) for ws in lines]
    n = sum(sizes)
    if n == 0:
        return np.zeros(0, np.uint32), np.zeros(0, np.int64)
    wh = _word_hashes([w for ws in lines for w in ws])
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


@functools.lru_cache(maxsize=8)
def check_datasketch_scheme(num_perm: int, seed: int) -> None:
    """Fail loudly if the installed datasketch no longer makes the signatures computed here."""
    from datasketch import MinHash

    m = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME)
    a, b = _permutations(num_perm, seed)
    if not (np.array_equal(m.permutations[0], a) and np.array_equal(m.permutations[1], b)):
        raise RuntimeError(
            f"datasketch's {SCHEME} permutations differ from pipelines.group_features' (datasketch upgraded?): "
            "pin datasketch to a 2.x release that matches, or update _permutations()"
        )



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


def line_signatures(lines: list[list[str]], k: int, num_perm: int, seed: int) -> np.ndarray:
    if not lines:
        return np.zeros((0, num_perm), dtype=np.uint32)
    h32, first = shingle_hashes(lines, k)
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
_SENTENCE_END = re.compile(r"[.!?:;\"“”—–]\s*$|\n")


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


_TERM_IDS: dict[str, int] = {}  # token -> term id, or -1 for a stop word (cached per process)


def _token_term(token: str) -> int:
    tid = _TERM_IDS.get(token)
    if tid is None:
        if len(_TERM_IDS) > 500_000:
            _TERM_IDS.clear()
        low = token.replace("’", "'").casefold()
        if low.endswith("'s"):
            low = low[:-2]
        if len(low) < 2 or low in _STOPWORDS or low.isdigit() and len(low) < 3:
            tid = -1
        else:
            tid = _term_id(_stem(low))
        _TERM_IDS[token] = tid
    return tid


def _add_terms(counts: dict[int, float], text: str, weight: float, limit: int | None) -> None:
    if limit is not None:
        text = text[: limit * 20]  # enough characters for `limit` words; don't tokenise the rest
    text = unicodedata.normalize("NFKC", text)
    if _NAME_WEIGHT == 1.0:  # no need to know where sentences start
        tokens = _TOKEN.findall(text)
        for token in tokens[:limit] if limit is not None else tokens:
            tid = _token_term(token)
            if tid >= 0:
                counts[tid] = counts.get(tid, 0.0) + weight
        return
    prev_end = 0
    for k, m in enumerate(_TOKEN.finditer(text)):
        if limit is not None and k >= limit:
            break
        sentence_start = prev_end == 0 or bool(_SENTENCE_END.search(text[prev_end : m.start()]))
        prev_end = m.end()
        token = m.group(0)
        tid = _token_term(token)
        if tid >= 0:
            w = weight * (_NAME_WEIGHT if token[0].isupper() and not sentence_start else 1.0)
            counts[tid] = counts.get(tid, 0.0) + w


def story_terms(title: str, text: str, lead_words: int = DEFAULT_LEAD_WORDS) -> tuple[np.ndarray, np.ndarray]:
    """Term ids and boosted counts of the title and the first ``lead_words`` words of the text.

    Terms come in order of first appearance (title first), which breaks ties between equally
    weighted terms in favour of the earlier ones when an article's salient terms are picked.
    """
    counts: dict[int, float] = {}
    _add_terms(counts, title or "", _TITLE_WEIGHT, None)
    _add_terms(counts, text or "", 1.0, lead_words)
    if not counts:
        return np.zeros(0, np.uint32), np.zeros(0, np.float32)
    ids = np.fromiter(counts.keys(), dtype=np.uint32, count=len(counts))
    tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
    return ids, tf
