"""The topic query language.

Grammar (operators are upper-case, terms match case-insensitively as whole words)::

    query   := or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*          # a bare space is an implicit AND
    unary   := "NOT" unary | atom
    atom    := WORD | "quoted phrase" | "(" query ")"

A term that contains punctuation (``GPT-4``, ``U.S.``) is matched as the phrase of
its word parts, so it matches the same text whatever the punctuation is.

>>> q = parse_query('Anthropic AND (Alibaba OR Qwen) AND NOT "stock tips"')
>>> q.match("Anthropic accuses Alibaba ...")
frozenset({'alibaba', 'anthropic'})
>>> q.match("Anthropic stock tips") is None
True
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Union

__all__ = ["QueryError", "Query", "parse_query", "tokenize_text"]

_WORD = re.compile(r"\w+", re.UNICODE)
_TOKEN = re.compile(r'\s*(?:(?P<lp>\()|(?P<rp>\))|"(?P<phrase>[^"]*)"|(?P<word>[^\s()"]+)|(?P<quote>"))')


class QueryError(ValueError):
    """A query that cannot be parsed; the message says where and how to fix it."""


def tokenize_text(text: str) -> list[str]:
    """Lower-case word tokens of ``text``: the unit of whole-word matching."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class _Term:
    words: tuple[str, ...]

    @property
    def label(self) -> str:
        return " ".join(self.words)

    def eval(self, doc: "_Doc") -> frozenset[str] | None:
        return frozenset([self.label]) if doc.contains(self.words) else None


@dataclass(frozen=True)
class _Not:
    child: "_Node"

    def eval(self, doc: "_Doc") -> frozenset[str] | None:
        return None if self.child.eval(doc) is not None else frozenset()


@dataclass(frozen=True)
class _And:
    children: tuple["_Node", ...]

    def eval(self, doc: "_Doc") -> frozenset[str] | None:
        found: frozenset[str] = frozenset()
        for child in self.children:
            hit = child.eval(doc)
            if hit is None:
                return None
            found |= hit
        return found


@dataclass(frozen=True)
class _Or:
    children: tuple["_Node", ...]

    def eval(self, doc: "_Doc") -> frozenset[str] | None:
        found: frozenset[str] | None = None
        for child in self.children:
            hit = child.eval(doc)
            if hit is not None:
                found = hit if found is None else found | hit
        return found


_Node = Union[_Term, _Not, _And, _Or]


class _Doc:
    """Tokens of one text, indexed for word and phrase look-ups."""

    def __init__(self, text: str):
        tokens = tokenize_text(text)
        self._words = set(tokens)
        self._joined = " " + " ".join(tokens) + " "

    def contains(self, words: tuple[str, ...]) -> bool:
        if len(words) == 1:
            return words[0] in self._words
        if not all(w in self._words for w in words):
            return False
        return (" " + " ".join(words) + " ") in self._joined


@dataclass(frozen=True)
class Query:
    """A parsed query. ``match(text)`` returns the matched terms, or None."""

    source: str
    root: _Node

    def match(self, text: str) -> frozenset[str] | None:
        return self.root.eval(_Doc(text))

    def fingerprint(self) -> str:
        """A short id of what the query matches, from its parsed form: the same for queries
        that differ only in spacing, letter case of terms or redundant parentheses."""
        canonical = json.dumps(_canonical(self.root), ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha1(canonical.encode("utf-8")).hexdigest()[:16]

    def terms(self) -> list[str]:
        """The positive terms (not under NOT), in query order: useful to rank work."""
        out: list[str] = []

        def walk(node: _Node, negated: bool) -> None:
            if isinstance(node, _Term):
                if not negated and node.label not in out:
                    out.append(node.label)
            elif isinstance(node, _Not):
                walk(node.child, not negated)
            else:
                for child in node.children:
                    walk(child, negated)

        walk(self.root, False)
        return out


def _canonical(node: _Node) -> list:
    """The parsed query as nested lists (["and", ["term", "anthropic"], ...]), for fingerprints."""
    if isinstance(node, _Term):
        return ["term", *node.words]
    if isinstance(node, _Not):
        return ["not", _canonical(node.child)]
    return ["and" if isinstance(node, _And) else "or", *(_canonical(child) for child in node.children)]


def parse_query(source: str) -> Query:
    """Parse ``source``; raise QueryError naming the position of the problem."""
    if not isinstance(source, str) or not source.strip():
        raise QueryError("the query is empty: write terms such as 'Anthropic AND Claude', or leave `query` out to keep every article")
    tokens = _lex(source)
    parser = _Parser(source, tokens)
    root = parser.parse_or()
    if parser.pos < len(tokens):
        kind, _value, at = tokens[parser.pos]
        if kind == ")":
            raise QueryError(f"unmatched ')' at position {at + 1}: remove it or add a '(' before it")
        raise QueryError(f"unexpected {kind!r} at position {at + 1}")
    return Query(source, root)


def _lex(source: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(source):
        if source[pos:].strip() == "":
            break
        m = _TOKEN.match(source, pos)
        assert m is not None  # the word alternative matches any other character
        start = m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
        if m.group("lp"):
            tokens.append(("(", "(", start))
        elif m.group("rp"):
            tokens.append((")", ")", start))
        elif m.group("quote"):
            raise QueryError(f'unclosed quote at position {start + 1}: close the phrase with a second "')
        elif m.group("phrase") is not None:
            words = tokenize_text(m.group("phrase"))
            if not words:
                raise QueryError(f"empty phrase at position {start + 1}: put words between the quotes")
            tokens.append(("term", " ".join(words), start))
        else:
            word = m.group("word")
            if word in ("AND", "OR", "NOT"):
                tokens.append((word, word, start))
            else:
                words = tokenize_text(word)
                if not words:
                    raise QueryError(f"{word!r} at position {start + 1} has no letters or digits to match")
                tokens.append(("term", " ".join(words), start))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, source: str, tokens: list[tuple[str, str, int]]):
        self.source = source
        self.tokens = tokens
        self.pos = 0

    def _peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def _end_position(self) -> int:
        return len(self.source)

    def parse_or(self) -> _Node:
        children = [self.parse_and()]
        while self._peek() == "OR":
            self.pos += 1
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else _Or(tuple(children))

    def parse_and(self) -> _Node:
        children = [self.parse_unary()]
        while True:
            kind = self._peek()
            if kind == "AND":
                self.pos += 1
                children.append(self.parse_unary())
            elif kind in ("term", "(", "NOT"):
                children.append(self.parse_unary())
            else:
                break
        if all(isinstance(c, _Not) for c in children):
            raise QueryError("the query only excludes (NOT ...): add at least one term that must appear")
        return children[0] if len(children) == 1 else _And(tuple(children))

    def parse_unary(self) -> _Node:
        if self._peek() == "NOT":
            self.pos += 1
            return _Not(self.parse_unary())
        return self.parse_atom()

    def parse_atom(self) -> _Node:
        if self.pos >= len(self.tokens):
            raise QueryError(f"the query ends too early (position {self._end_position()}): a term is missing after the last operator")
        kind, value, at = self.tokens[self.pos]
        if kind == "term":
            self.pos += 1
            return _Term(tuple(value.split(" ")))
        if kind == "(":
            self.pos += 1
            node = self.parse_or()
            if self._peek() != ")":
                raise QueryError(f"unclosed '(' at position {at + 1}: add the matching ')'")
            self.pos += 1
            return node
        if kind == ")":
            raise QueryError(f"empty or misplaced ')' at position {at + 1}")
        raise QueryError(f"operator {value} at position {at + 1} needs a term before and after it")
