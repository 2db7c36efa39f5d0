"""Text normalisation shared by extraction (content hash) and grouping (shingles)."""

from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = ["normalise_text", "content_hash", "words", "block_key"]

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-case word tokens after Unicode NFKC folding."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def normalise_text(text: str) -> str:
    """One space-separated line of lower-case words: punctuation, case and layout removed."""
    return " ".join(words(text))


def content_hash(text: str) -> str:
    """sha1 of the normalised text: exact copies (whatever their markup) share it."""
    return hashlib.sha1(normalise_text(text).encode("utf-8")).hexdigest()


def block_key(block: str) -> int:
    """A signed 64-bit key of a text block's normalised words (fits an SQLite INTEGER)."""
    digest = hashlib.blake2b(normalise_text(block).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
