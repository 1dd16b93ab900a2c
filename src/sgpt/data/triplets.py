"""Build (anchor, positive, hard negative) triplets from NLI pairs, as ``training_nli_v2.py`` does (SPEC 2.1)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from sgpt.data.nli_pairs import LABELS, NLIPair


def partner_sets(pairs: Sequence[NLIPair]) -> dict[str, dict[str, set[str]]]:
    """Register every pair in both directions: sentence -> {label: set of partner sentences}.

    Args:
        pairs: Labelled pairs (texts stripped again here, as the reference script does).

    Returns:
        Dict in first-seen order of sentences; each value has the keys entailment, neutral,
        contradiction (possibly empty sets).

    Raises:
        ValueError: A pair's label is not one of ``LABELS``.
    """
    partners: dict[str, dict[str, set[str]]] = {}
    for i, pair in enumerate(pairs):
        if pair.label not in LABELS:
            raise ValueError(f"pairs[{i}].label: unknown label {pair.label!r} (expected one of {', '.join(LABELS)})")
        s1, s2 = pair.premise.strip(), pair.hypothesis.strip()
        for a, b in ((s1, s2), (s2, s1)):  # the reference also adds the opposite direction
            partners.setdefault(a, {label: set() for label in LABELS})[pair.label].add(b)
    return partners


def build_triplets(pairs: Sequence[NLIPair], *, seed: int = 0) -> list[tuple[str, str, str]]:
    """Turn NLI pairs into MNRL training triplets (SPEC 2.1, SBERT ``training_nli_v2.py``).

    For each sentence s (first-seen order) with at least one entailment partner and one
    contradiction partner, two triplets are added: (s, random entailment, random contradiction)
    and (random entailment, s, random contradiction). Neutral pairs are unused. Partners are drawn
    with ``random.Random(seed)`` from sorted partner lists, so the result depends only on the input
    and the seed; the draw order (entailment, contradiction, entailment, contradiction) follows the
    reference script.

    Args:
        pairs: Labelled pairs, labels from ``sgpt.data.LABELS``.
        seed: Seed of the partner draws.

    Raises:
        ValueError: A pair's label is not one of ``LABELS``.

    Returns:
        ``2 * (number of sentences having both an entailment and a contradiction partner)`` triplets.
    """
    rng = random.Random(seed)
    triplets: list[tuple[str, str, str]] = []
    for sentence, by_label in partner_sets(pairs).items():
        entailed = sorted(by_label["entailment"])
        contradicted = sorted(by_label["contradiction"])
        if not entailed or not contradicted:
            continue
        triplets.append((sentence, rng.choice(entailed), rng.choice(contradicted)))
        triplets.append((rng.choice(entailed), sentence, rng.choice(contradicted)))
    return triplets
