"""Grouping of stored articles: near-duplicate copies (``cluster_id``) and stories (``story_id``).

Two questions are asked of every article, in the order it is stored:

* **Is it a copy of an earlier article?** (wire copies, syndication edits, trims, re-headlined
  copies, inserted "Read more" lines, datelines). Every line of the text has the MinHash minima
  of its word shingles (:mod:`pipelines.group_features`). Lines that recur on other pages of
  the same host are the site's template (sidebars, cookie banners, ad cards) and are left out,
  so the article's signature is the element-wise minimum over its own lines only (MinHash of
  the union). Banded LSH over that signature (bands and rows chosen by
  ``datasketch.MinHashLSH`` for the threshold) finds candidates; the best one whose estimated
  Jaccard similarity reaches ``NEWS_DEDUP_THRESHOLD`` gives its cluster. Exact copies are
  caught first by content hash.
* **Which story does it report?** A copy joins its original's story. Other articles are
  compared by TF-IDF over their salient terms (the story terms of
  :func:`pipelines.group_features.story_terms`), IDF from the articles in the index, the
  ``_SALIENT_TERMS`` heaviest terms kept. A term-to-article inverted index scores the earlier
  articles; an article joins the story whose closest members (mean of the top
  ``_STORY_TOP_K``, published at most ``NEWS_STORY_GAP_DAYS`` apart) reach
  ``NEWS_STORY_THRESHOLD``, or starts a new one.

This module is the engine, its persistence and its schema. :func:`features` (the CPU-heavy,
pure part, run in the extraction worker processes) lives in :mod:`pipelines.group_features`
and the compact numpy indexes in :mod:`pipelines.group_index`; :func:`features`,
:class:`Features`, :func:`story_terms` and ``SCHEME`` are re-exported here. :class:`Grouper`
holds the in-memory indexes: :meth:`Grouper.assign` is synchronous and does no I/O (query, then
insert, so two copies in one crawl find each other); :meth:`Grouper.persist` writes the compact
state (signatures as raw ``uint32`` with their scheme, ``num_perm``, seed and shingle size; line
hashes; term ids and counts) inside the store's transaction; :meth:`Grouper.restore` rebuilds
the indexes from it for the last ``NEWS_GROUP_WINDOW_DAYS`` without reading article text. Group
ids are ``c``/``s`` + 15 hex digits of the sha1 of the group's first article URL: stable across
runs and regroups.

See docs/grouping.md for the measurements behind the defaults.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Iterable

import numpy as np
from sqlite_utils.migrations import Migrations

from pipelines.group_features import (
    DEFAULT_LEAD_WORDS,
    DEFAULT_NUM_PERM,
    DEFAULT_SEED,
    DEFAULT_SHINGLE,
    SCHEME,
    Features,
    check_datasketch_scheme,
    check_feature_params,
    features,
    story_terms,
)
from pipelines.group_index import Counts, GroupIds, Grow, Postings, band_keys, lsh_band_params, stable_order

logger = logging.getLogger(__name__)

__all__ = [
    "Assignment",
    "Features",
    "GROUP_MIGRATIONS",
    "Grouper",
    "SCHEME",
    "features",
    "refresh_groups",
    "story_terms",
    "DEFAULTS",
]

#: setting name -> default; every setting Grouper.from_settings reads
DEFAULTS: dict[str, float | int] = {
    "NEWS_DEDUP_THRESHOLD": 0.4,  # estimated Jaccard of content shingles to call a copy
    "NEWS_DEDUP_NUM_PERM": DEFAULT_NUM_PERM,  # MinHash permutations (signature: 4 bytes each)
    "NEWS_DEDUP_SHINGLE": DEFAULT_SHINGLE,  # words per shingle
    "NEWS_DEDUP_SEED": DEFAULT_SEED,  # MinHash permutation seed
    "NEWS_DEDUP_BOILERPLATE_PAGES": 2,  # a line on this many pages of a host is its template
    "NEWS_STORY_THRESHOLD": 0.30,  # TF-IDF cosine (mean over the closest members) to join a story
    "NEWS_STORY_GAP_DAYS": 3,  # members published further apart than this don't count
    "NEWS_STORY_LEAD_WORDS": DEFAULT_LEAD_WORDS,  # words of the text (after the title) that describe the story
    "NEWS_GROUP_WINDOW_DAYS": 30,  # days of stored articles kept in the indexes
}

_MIN_CONTENT_WORDS = 20  # fewer own words than this after removing template lines: keep them all
# A same-site copy (one site publishing a text twice, under two URLs) shares its lines with
# exactly one other page of the host, so they look like template. When most of an article's
# words are in such lines that are also prose paragraphs (templates are made of short blocks:
# links, teasers, cards), and no copy was found, it is compared again, lines shared once
# included, with the earlier articles of its own host, at a stricter similarity.
_SAME_SITE_THRESHOLD = 0.7
_PROSE_LINE_WORDS = 30
_STORY_TOP_K = 3  # a story's score: mean similarity of its K closest members
_SALIENT_TERMS = 60  # an article's story vector: its top terms by TF-IDF
_MAX_POSTINGS = 5_000  # per term, the most recent articles scored (bounds the cost of very common terms)
_NO_DAY = np.iinfo(np.int32).min
_EPOCH = date(1970, 1, 1)


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
    """``settings.getfloat/getint(name, default)`` for Scrapy settings, else ``settings.get(name)`` of a mapping."""
    default = DEFAULTS[name]
    if settings is None:
        return default
    getter = getattr(settings, "getfloat" if kind is float else "getint", None)
    try:
        if getter is not None:
            return getter(name, default)
        value = settings.get(name, default)
        if value is None or value == "":
            return default
        number = float(value)
        if kind is int and not number.is_integer():
            raise ValueError
        return int(number) if kind is int else number
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
        check_feature_params(num_perm, seed, shingle, lead_words)
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
        # stories only gather members published within story_gap_days: restore() indexes this much
        self.story_days = min(window_days, max(7, 2 * story_gap_days + 1))
        #: batch mode over articles in no particular time order: never drop old story postings
        self.keep_all_stories = False
        self._now = now
        if lsh_params is None:
            lsh_params = lsh_band_params(self.dedup_threshold, num_perm)
        self.bands, self.band_rows = lsh_params
        if self.bands < 1 or self.band_rows < 1 or self.bands * self.band_rows > num_perm:
            raise ValueError(f"lsh_params={lsh_params!r}: need bands * rows <= num_perm ({num_perm})")
        check_datasketch_scheme(num_perm, seed)
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
        self._sigs = Grow(np.uint32, self.num_perm)
        self._cluster = Grow(np.int32)
        self._story = Grow(np.int32)
        self._pub_day = Grow(np.int32, fill=_NO_DAY)
        self._seen_day = Grow(np.int32)
        self._newest_day = 0  # newest seen day
        self._newest_pub = _NO_DAY  # newest published day
        self._clusters = GroupIds("c")
        self._stories = GroupIds("s")
        self._story_size = Grow(np.int32)
        self._hosts: dict[str, int] = {}
        # exact copies: each row's content hash, and a postings index on its low 32 bits
        # (16 bytes an article, against ~150 for a dict entry)
        self._chash = Grow(np.uint64)
        self._row_host = Grow(np.int32)  # host id of each row (same-site copies)
        self._by_hash = Postings(weighted=False)
        self._lsh = Postings(weighted=False)
        self._lines = Counts()
        self._df = Counts()
        self._n_docs = 0
        # story postings of articles older than story_days (than the newest article) are dropped as the index grows
        self._postings = Postings(weighted=True, keep=self._recent_rows)
        self._df_frozen = False

    def __len__(self) -> int:
        return len(self._urls)

    def _recent_rows(self, rows: np.ndarray) -> np.ndarray:
        """Mask of rows that can still gather story members: published (else seen) within story_days of the newest."""
        if self.keep_all_stories:
            return np.ones(len(rows), dtype=bool)
        pub = self._pub_day.data[rows]
        return np.where(
            pub == _NO_DAY,
            self._seen_day.data[rows] >= self._newest_day - self.story_days,
            pub >= self._newest_pub - self.story_days,
        )

    def _today(self) -> datetime:
        return self._now or datetime.now(timezone.utc).replace(tzinfo=None)

    def _host_id(self, hostname: str) -> int:
        hid = self._hosts.get(hostname)
        if hid is None:
            hid = self._hosts[hostname] = len(self._hosts) + 1
        return hid

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

        sig, has_text, site_sig = self._content_signature(host, feats)
        chash = int(feats.content_hash[:15], 16) if has_text else 0
        bands = band_keys(sig, self.bands, self.band_rows)[0] if has_text else None
        match, similarity = self._find_copy(sig, bands, chash) if has_text else (None, 0.0)
        if match is None and site_sig is not None:
            match, similarity = self._find_same_site_copy(host, site_sig)
        order, vector = self._weigh(feats, count=True)
        salient = feats.terms[order[: len(vector)]]

        story_sim, new_story = 0.0, False
        if match is not None:  # a copy follows its original into its story
            cluster = int(self._cluster.data[match])
            story = int(self._story.data[match])
            story_sim = 1.0
        else:
            cluster = self._clusters.append(_group_id("c", url))
            story, story_sim = self._find_story(salient, vector, pub_day)
            if story is None:
                story = self._stories.append(_group_id("s", url))
                self._story_size.append(0)
                new_story, story_sim = True, 0.0

        self._insert(url, host, sig if has_text else None, bands, chash, cluster, story, pub_day, seen_day, salient, vector)
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
            feats.terms[order].astype("<u4").tobytes(),  # the salient ones first
            feats.term_weights[order].astype("<f2").tobytes(),
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

    def _content_signature(self, host: int, feats: Features, counted: bool = False) -> tuple[np.ndarray, bool, np.ndarray | None]:
        """Signature of the article's own lines (template lines of its host left out), whether it has any,
        and, when most of its words are in lines found on exactly one other page of the host, the
        signature of its lines seen on at most one other page (to look for a same-site copy)."""
        n = len(feats.line_hashes)
        if n == 0:
            return np.full(self.num_perm, np.iinfo(np.uint32).max, dtype=np.uint32), False, None
        keys = (np.uint64(host) << np.uint64(32)) | feats.line_hashes.astype(np.uint64)
        before = self._lines.get(keys)
        if counted:  # the lines of an article already in the index (rejoin): not counting itself
            before = np.maximum(before - 1, 0)
        own = before < self.boilerplate_pages - 1
        site_sig = None
        if not own.all():
            if int(feats.line_words[own].sum()) < _MIN_CONTENT_WORDS:
                own[:] = True  # nearly all of it is on other pages of the host: a same-site copy, compare it whole
            else:
                rare = before <= 1  # its own lines and those on exactly one other page
                prose_once = (before == 1) & (feats.line_words >= _PROSE_LINE_WORDS)
                if prose_once.any() and 2 * int(feats.line_words[prose_once].sum()) >= int(feats.line_words[rare].sum()):
                    site_sig = feats.line_sigs[rare].min(axis=0)
        if not counted:
            self._lines.add(keys)
        return feats.line_sigs[own].min(axis=0), True, site_sig

    def _find_same_site_copy(self, host: int, sig: np.ndarray) -> tuple[int | None, float]:
        """The earlier article of the same host that ``sig`` (own lines and lines shared once) copies, if any."""
        if not len(self._lsh):
            return None, 0.0
        cands, _, _ = self._lsh.lookup(band_keys(sig, self.bands, self.band_rows)[0])
        cands = np.unique(cands)
        return self._best_candidate(cands[self._row_host.data[cands] == host], sig, max(self.dedup_threshold, _SAME_SITE_THRESHOLD))

    def _find_copy(self, sig: np.ndarray, bands: np.ndarray, chash: int, exclude: int = -1) -> tuple[int | None, float]:
        """The earlier article this one copies (exact content hash, else the best LSH candidate at
        the threshold); never row ``exclude`` (the article itself, in rejoin)."""
        if len(self._by_hash):
            rows, _, _ = self._by_hash.lookup(np.array([chash & 0xFFFFFFFF], dtype=np.uint32))
            rows = rows[(self._chash.data[rows] == np.uint64(chash)) & (rows != exclude)]
            if len(rows):
                return int(rows.min()), 1.0  # the oldest copy
        if not len(self._lsh):
            return None, 0.0
        cands, _, _ = self._lsh.lookup(bands)
        cands = np.unique(cands)
        return self._best_candidate(cands[cands != exclude], sig, self.dedup_threshold)

    def _best_candidate(self, cands: np.ndarray, sig: np.ndarray, threshold: float) -> tuple[int | None, float]:
        """The candidate row whose signature agrees most with ``sig``, if at least ``threshold`` (ties: the oldest)."""
        if not len(cands):
            return None, 0.0
        sims = (self._sigs.data[cands] == sig).sum(axis=1) / self.num_perm
        best = int(np.argmax(sims))
        if sims[best] >= threshold:
            return int(cands[best]), float(sims[best])
        return None, 0.0

    def _weigh(self, feats: Features, count: bool) -> tuple[np.ndarray, np.ndarray]:
        """Order of ``feats.terms`` by TF-IDF weight, and the unit vector of the ``_SALIENT_TERMS`` first.

        The article is counted in the document frequencies first (unless they were learned up front).
        """
        if not len(feats.terms):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        keys = feats.terms.astype(np.uint64)
        if count and not self._df_frozen:
            self._df.add(keys)
            self._n_docs += 1
        df = self._df.get(keys)
        idf = np.log((max(self._n_docs, 1) + 1) / (df + 1.0)) + 1.0
        w = np.maximum((1.0 + np.log(np.maximum(feats.term_weights, 1e-3))) * idf, 0.0)
        order = np.argsort(-w, kind="stable")
        top = w[order[:_SALIENT_TERMS]]
        norm = float(np.sqrt((top * top).sum()))
        return order, (top / norm if norm > 0 else top).astype(np.float32)

    def _find_story(self, terms: np.ndarray, vector: np.ndarray, pub_day: int | None) -> tuple[int | None, float]:
        """The best story for this vector and its score, or (None, 0.0) if none reaches the threshold.

        A story's score is the mean similarity of its ``_STORY_TOP_K`` closest members (fewer
        if it is smaller); members published more than ``story_gap_days`` away score 0.
        """
        if not len(terms):
            return None, 0.0
        rows, weights, which = self._postings.lookup(terms, cap=_MAX_POSTINGS)
        if not len(rows):
            return None, 0.0
        contrib = weights * vector[which]
        if pub_day is not None:
            days = self._pub_day.data[rows]
            ok = (days == _NO_DAY) | (np.abs(days - pub_day) <= self.story_gap_days)
            rows, contrib = rows[ok], contrib[ok]
        scores = np.bincount(rows, weights=contrib, minlength=self._story.n)  # cosine with each article
        # only a story with a member at or above the threshold can reach it
        hopeful = np.flatnonzero(scores >= self.story_threshold)
        if not len(hopeful):
            return None, 0.0
        flag = np.zeros(len(self._stories), dtype=bool)
        flag[self._story.data[hopeful]] = True
        docs = np.flatnonzero(scores > 0)
        stories = self._story.data[docs]
        keep = flag[stories]
        docs, stories, sc = docs[keep], stories[keep], scores[docs[keep]]
        order = np.lexsort((-sc, stories))
        stories, sc = stories[order], sc[order]
        idx = np.arange(len(order))
        first = np.r_[True, stories[1:] != stories[:-1]]
        rank = idx - np.maximum.accumulate(np.where(first, idx, 0))
        top = rank < _STORY_TOP_K
        uniq, inv = np.unique(stories[top], return_inverse=True)
        final = np.bincount(inv, weights=sc[top]) / np.maximum(np.minimum(self._story_size.data[uniq], _STORY_TOP_K), 1)
        best = int(np.argmax(final))
        if final[best] >= self.story_threshold:
            return int(uniq[best]), float(final[best])
        return None, 0.0

    def _insert(self, url, host, sig, bands, chash, cluster, story, pub_day, seen_day, terms, vector) -> int:
        row = len(self._urls)
        self._row_host.append(host)
        self._seen_day.append(seen_day)
        self._newest_day = max(self._newest_day, seen_day)
        if pub_day is not None and pub_day <= seen_day:
            self._newest_pub = max(self._newest_pub, pub_day)
        self._urls.append(url)
        self._row_of[url] = row
        self._cluster.append(cluster)
        self._story.append(story)
        self._story_size.data[story] += 1
        self._pub_day.append(_NO_DAY if pub_day is None else pub_day)
        if sig is None:
            chash = 0
            self._sigs.append(np.iinfo(np.uint32).max)
        else:
            self._sigs.append(sig)
            self._lsh.add(bands, row)
            self._by_hash.add(np.array([chash & 0xFFFFFFFF], dtype=np.uint32), row)
        self._chash.append(chash)
        if len(terms):
            self._postings.add(terms, row, vector)
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

    def rejoin(self, url: str, hostname: str | None, feats: Features) -> Assignment | None:
        """Groups of an article whose text was cleaned again after it was grouped (its site's
        template became known later in the crawl): the index takes the cleaned text's signature,
        and an article alone in its near-duplicate group whose cleaned text copies another
        article moves into that article's group and story (as a copy follows its original).
        Returns the assignment (``record``: what persist_rejoined writes), or None for an
        article the index does not hold. Story terms are left as they were."""
        row = self._row_of.get(url)
        if row is None:
            return None
        cluster, story = int(self._cluster.data[row]), int(self._story.data[row])
        sig, has_text, _ = self._content_signature(self._host_id(hostname or ""), feats, counted=True)
        match, similarity, chash = None, 0.0, None  # no text left: the index keeps what it had
        if has_text:
            chash = int(feats.content_hash[:15], 16)
            bands = band_keys(sig, self.bands, self.band_rows)[0]
            if np.count_nonzero(self._cluster.data[: len(self._urls)] == cluster) == 1:
                match, similarity = self._find_copy(sig, bands, chash, exclude=row)
            self._sigs.data[row] = sig  # later copies of the cleaned text find it
            self._chash.data[row] = chash
            self._lsh.add(bands, row)
            self._by_hash.add(np.array([chash & 0xFFFFFFFF], dtype=np.uint32), row)
        if match is not None and int(self._cluster.data[match]) != cluster:
            self._cluster.data[row] = self._cluster.data[match]
            new_story = int(self._story.data[match])
            if new_story != story:
                self._story_size.data[story] -= 1
                self._story_size.data[new_story] += 1
                self._story.data[row] = new_story
        else:
            match, similarity = None, 0.0
        return Assignment(
            cluster_id=self._clusters[int(self._cluster.data[row])],
            story_id=self._stories[int(self._story.data[row])],
            duplicate_of=self._urls[match] if match is not None else None,
            similarity=round(float(similarity), 4),
            story_similarity=1.0 if match is not None else 0.0,
            new_cluster=False,
            new_story=False,
            record=(sig.astype("<u4").tobytes() if has_text else None, chash, self._clusters[cluster], self._stories[story]),
        )

    @staticmethod
    def persist_rejoined(db, rows: list[tuple[str, Assignment]]) -> None:
        """Write what :meth:`rejoin` decided: the articles' groups and signatures, the counts of
        the groups they left and joined (a group left empty is deleted). Call it inside a
        transaction."""
        left_c, left_s, touched_c, touched_s = set(), set(), set(), set()
        for url, a in rows:
            signature, chash, old_cluster, old_story = a.record
            db.conn.execute(
                "UPDATE group_articles SET cluster_id = ?, story_id = ?, signature = COALESCE(?, signature), chash = COALESCE(?, chash) WHERE url = ?",
                [a.cluster_id, a.story_id, signature, chash, url],
            )
            db.conn.execute("UPDATE articles SET cluster_id = ?, story_id = ? WHERE url = ?", [a.cluster_id, a.story_id, url])
            touched_c |= {a.cluster_id, old_cluster}
            touched_s |= {a.story_id, old_story}
            if old_cluster != a.cluster_id:
                left_c.add(old_cluster)
            if old_story != a.story_id:
                left_s.add(old_story)
        for table, column, ids in (("clusters", "cluster_id", left_c), ("stories", "story_id", left_s)):
            for chunk in _chunks(sorted(ids), 500):
                marks = ", ".join("?" for _ in chunk)
                db.conn.execute(
                    f"DELETE FROM {table} WHERE id IN ({marks}) AND id NOT IN (SELECT {column} FROM group_articles WHERE {column} IN ({marks}))",
                    [*chunk, *chunk],
                )
        refresh_groups(db, touched_c, touched_s)  # (an empty group has nothing to count: deleted above)

    def restore(self, db) -> None:
        """Rebuild the indexes from the ``group_articles`` rows of the window (no article text is read).

        Near-duplicate signatures and template lines: rows seen in the last ``window_days``.
        Story terms (and the IDF): rows seen in the last ``story_days``, since an article only
        joins stories with members published within ``story_gap_days`` of it.
        """
        if "group_articles" not in db.table_names():
            GROUP_MIGRATIONS.apply(db)
        self._reset()
        today = (self._today().date() - _EPOCH).days
        story_since, since = today - self.story_days, today - self.window_days
        ok_sql = "(scheme = ? AND num_perm = ? AND seed = ? AND shingle = ? AND signature IS NOT NULL)"
        ok_args = [SCHEME, self.num_perm, self.seed, self.shingle]
        n, n_lines, n_terms = db.conn.execute(
            "SELECT COUNT(*), TOTAL(LENGTH(lines)) / 4, TOTAL(CASE WHEN seen_day >= ? THEN LENGTH(terms) END) / 4 "
            "FROM group_articles WHERE seen_day >= ?",
            [story_since, since],
        ).fetchone()
        if not n:
            return
        n_lines, n_terms = int(n_lines), int(n_terms)
        # everything goes straight into preallocated arrays (blobs copied through memoryviews)
        self._sigs.reserve(n + n // 10 + 1024)
        sig_bytes = memoryview(self._sigs.data).cast("B")
        sig_len = 4 * self.num_perm
        ok = np.zeros(n, dtype=bool)
        pdays = np.full(n, _NO_DAY, dtype=np.int32)
        sdays = np.zeros(n, dtype=np.int32)
        hosts = np.zeros(n, dtype=np.uint64)
        line_lens = np.zeros(n, dtype=np.int64)
        term_lens = np.zeros(n, dtype=np.int64)
        all_lines = np.empty(n_lines, dtype=np.uint32)
        all_terms = np.empty(n_terms, dtype=np.uint32)
        all_tf = np.empty(n_terms, dtype=np.float16)
        lines_mv = memoryview(all_lines).cast("B")
        terms_mv = memoryview(all_terms).cast("B")
        tf_mv = memoryview(all_tf).cast("B")
        urls: list[str] = []
        cids: list[str] = []
        sids: list[str] = []
        chashes: list[int] = []
        cur = db.conn.execute(
            f"SELECT url, cluster_id, story_id, hostname, published_day, seen_day, chash, {ok_sql}, signature, lines, "
            "CASE WHEN seen_day >= ? THEN terms END, CASE WHEN seen_day >= ? THEN term_tf END "
            "FROM group_articles WHERE seen_day >= ? ORDER BY rowid",
            [*ok_args, story_since, story_since, since],
        )
        host_id = self._host_id
        i = lo = to = 0
        while i < n:
            chunk = cur.fetchmany(2000)
            if not chunk:
                break
            for url, cid, sid, host, pday, sday, chash, good, sig, line, term, tf in chunk[: n - i]:
                urls.append(url)
                cids.append(cid)
                sids.append(sid)
                chashes.append(chash or 0)
                hosts[i] = host_id(host or "")
                sdays[i] = sday
                if pday is not None:
                    pdays[i] = pday
                if good and len(sig) == sig_len:
                    ok[i] = True
                    sig_bytes[i * sig_len : (i + 1) * sig_len] = sig
                if line:
                    lines_mv[lo : lo + len(line)] = line
                    line_lens[i] = len(line) // 4
                    lo += len(line)
                if term:
                    k = len(term)
                    terms_mv[to : to + k] = term
                    tf_mv[to // 2 : (to + k) // 2] = tf
                    term_lens[i] = k // 4
                    to += k
                i += 1
        del sig_bytes, lines_mv, terms_mv, tf_mv
        n = i
        sigs = self._sigs.data
        all_lines, all_terms, all_tf = all_lines[: lo // 4], all_terms[: to // 4], all_tf[: to // 4]
        self._sigs.n = n
        self._urls = urls
        self._row_of = {u: r for r, u in enumerate(urls)}
        self._cluster.extend(self._clusters.load(cids[:n]))
        story_idx = self._stories.load(sids[:n])
        del cids, sids
        self._story.extend(story_idx)
        self._story_size.extend(np.bincount(story_idx, minlength=len(self._stories)).astype(np.int32))
        self._pub_day.extend(pdays[:n])
        self._seen_day.extend(sdays[:n])
        self._newest_day = int(sdays[:n].max()) if n else 0
        self._newest_pub = int(pdays[:n].max()) if n else _NO_DAY

        # near-duplicate index: only signatures made with this grouper's parameters
        good = np.flatnonzero(ok[:n])
        if len(good):
            for start in range(0, len(good), 20_000):  # band keys in slices: bounded temporary memory
                part = good[start : start + 20_000]
                keys = band_keys(sigs[part], self.bands, self.band_rows).ravel()
                self._lsh.add_bulk(keys, np.repeat(part.astype(np.int32), self.bands))
            self._lsh.seal()
        hashes = np.array(chashes[:n], dtype=np.uint64)
        hashes[~ok[:n]] = 0
        self._chash.extend(hashes)
        self._row_host.extend(hosts[:n].astype(np.int32))
        if len(good):
            self._by_hash.load((hashes[good] & np.uint64(0xFFFFFFFF)).astype(np.uint32), good.astype(np.int32))
        if len(good) < n:
            logger.warning(
                "%d stored article(s) have signatures made with other NEWS_DEDUP_* settings (or none): they are "
                "left out of near-duplicate matching; run `python -m pipelines.cluster regroup --db FILE` to recompute",
                n - len(good),
            )

        # template lines per host
        self._lines.load((np.repeat(hosts[:n], line_lens[:n]) << np.uint64(32)) | all_lines.astype(np.uint64))
        del all_lines

        # story index: document frequencies, then each recent article's salient TF-IDF vector
        term_lens = term_lens[:n]
        if len(all_terms):
            order = stable_order(all_terms)
            sorted_terms = all_terms[order]
            first = np.r_[True, sorted_terms[1:] != sorted_terms[:-1]]
            starts_u = np.flatnonzero(first)
            counts = np.diff(np.r_[starts_u, len(sorted_terms)])
            self._df.keys, self._df.counts = sorted_terms[starts_u].astype(np.uint64), counts.astype(np.int32)
            df = np.empty(len(all_terms), dtype=np.int32)
            df[order] = np.repeat(counts, counts)
            del order, sorted_terms, first
            docs = int((term_lens > 0).sum())
            self._n_docs = docs
            # each article's salient terms were stored first: index those, weighed with today's IDF
            starts = np.cumsum(term_lens) - term_lens
            keep = (np.arange(len(all_terms)) - np.repeat(starts, term_lens)) < _SALIENT_TERMS
            doc = np.repeat(np.arange(n, dtype=np.int32), term_lens)[keep]
            idf = np.log((docs + 1) / (df[keep] + 1.0)) + 1.0
            del df
            w = np.maximum((1.0 + np.log(np.maximum(all_tf[keep].astype(np.float32), 1e-3))) * idf, 0.0)
            norms = np.sqrt(np.bincount(doc, weights=w * w, minlength=n))
            w = (w / np.where(norms > 0, norms, 1.0)[doc]).astype(np.float32)
            self._postings.load(all_terms[keep], doc, w)
        logger.info(
            "Grouping index restored: %d article(s) from the last %d days (%d with story terms), %d cluster(s), %d stor(ies)",
            n, self.window_days, int((term_lens > 0).sum()), len(self._clusters), len(self._stories),
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
                last_seen = excluded.last_seen, size = excluded.size, distinct_sites = excluded.distinct_sites,
                representative_url = excluded.representative_url
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
            ON CONFLICT(id) DO UPDATE SET title = excluded.title, representative_url = excluded.representative_url,
                first_seen = excluded.first_seen, last_seen = excluded.last_seen,
                article_count = excluded.article_count, cluster_count = excluded.cluster_count,
                distinct_sites = excluded.distinct_sites
            """,
            chunk,
        )


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


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
