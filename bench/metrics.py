"""Clustering agreement metrics: pairwise precision/recall/F1, BCubed and adjusted Rand index.

All functions take two equal-length sequences of hashable labels: ``pred`` (the grouping
under test) and ``gold`` (the reference). Items are positions; labels are only compared
for equality, so any hashable ids work.

    >>> pairwise([1, 1, 2], ["a", "a", "b"])
    {'precision': 1.0, 'recall': 1.0, 'f1': 1.0, 'tp': 1, 'pred_pairs': 1, 'gold_pairs': 1}
"""

from __future__ import annotations

from collections import Counter
from typing import Hashable, Sequence

import numpy as np

__all__ = ["pairwise", "bcubed", "adjusted_rand_index", "report"]


def _check(pred: Sequence[Hashable], gold: Sequence[Hashable]) -> None:
    if len(pred) != len(gold):
        raise ValueError(f"pred has {len(pred)} labels but gold has {len(gold)}: pass one label per item in both")


def _pairs(n: np.ndarray | int) -> np.ndarray | int:
    return n * (n - 1) // 2


def _contingency(pred: Sequence[Hashable], gold: Sequence[Hashable]) -> tuple[Counter, Counter, Counter]:
    return Counter(zip(pred, gold)), Counter(pred), Counter(gold)


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def pairwise(pred: Sequence[Hashable], gold: Sequence[Hashable]) -> dict:
    """Precision/recall/F1 over unordered pairs of items that share a label.

    With no predicted (or gold) pairs at all, precision (or recall) is 1.0 by convention.
    """
    _check(pred, gold)
    both, p, g = _contingency(pred, gold)
    tp = sum(_pairs(c) for c in both.values())
    pp = sum(_pairs(c) for c in p.values())
    gp = sum(_pairs(c) for c in g.values())
    precision = tp / pp if pp else 1.0
    recall = tp / gp if gp else 1.0
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall), "tp": tp, "pred_pairs": pp, "gold_pairs": gp}


def bcubed(pred: Sequence[Hashable], gold: Sequence[Hashable]) -> dict:
    """BCubed precision/recall/F1 (Bagga & Baldwin), averaged over items.

    For an item, precision is the share of its predicted cluster (itself included) that shares
    its gold label; recall is the share of its gold cluster that shares its predicted label.
    """
    _check(pred, gold)
    n = len(pred)
    if n == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    both, p, g = _contingency(pred, gold)
    # every item in the cell (pl, gl) scores c/|pl| and c/|gl|; there are c such items
    precision = sum(c * c / p[pl] for (pl, _), c in both.items()) / n
    recall = sum(c * c / g[gl] for (_, gl), c in both.items()) / n
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def adjusted_rand_index(pred: Sequence[Hashable], gold: Sequence[Hashable]) -> float:
    """Hubert & Arabie's adjusted Rand index: 1 for identical partitions, about 0 for chance."""
    _check(pred, gold)
    n = len(pred)
    if n < 2:
        return 1.0
    both, p, g = _contingency(pred, gold)
    index = sum(_pairs(c) for c in both.values())
    sum_p = sum(_pairs(c) for c in p.values())
    sum_g = sum(_pairs(c) for c in g.values())
    expected = sum_p * sum_g / _pairs(n)
    maximum = (sum_p + sum_g) / 2
    if maximum == expected:  # both partitions all-singletons or one cluster: identical structure
        return 1.0
    return float((index - expected) / (maximum - expected))


def report(pred: Sequence[Hashable], gold: Sequence[Hashable]) -> dict:
    """All the figures at once, as one flat dict."""
    pw = pairwise(pred, gold)
    b3 = bcubed(pred, gold)
    return {
        "items": len(pred),
        "pred_groups": len(set(pred)),
        "gold_groups": len(set(gold)),
        "pair_precision": pw["precision"],
        "pair_recall": pw["recall"],
        "pair_f1": pw["f1"],
        "bcubed_precision": b3["precision"],
        "bcubed_recall": b3["recall"],
        "bcubed_f1": b3["f1"],
        "ari": adjusted_rand_index(pred, gold),
    }
