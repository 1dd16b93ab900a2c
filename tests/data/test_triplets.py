"""Tests for sgpt.data.triplets.build_triplets (SPEC 2.1): hand-made cases and the real SNLI/SICK counts."""

from __future__ import annotations

import pytest
from conftest import need_data

from sgpt.data import NLIPair, build_triplets, read_nli_pairs


def count_with_both_labels(pairs: list[NLIPair]) -> int:
    """Oracle, written apart from the implementation: 2 x sentences with an entailment and a contradiction partner."""
    entailment, contradiction = set(), set()
    for p in pairs:
        for s in (p.premise.strip(), p.hypothesis.strip()):
            if p.label == "entailment":
                entailment.add(s)
            elif p.label == "contradiction":
                contradiction.add(s)
    return 2 * len(entailment & contradiction)


def test_hand_made_triplets():
    pairs = [
        NLIPair("A", "B", "entailment"),
        NLIPair("A", "C", "contradiction"),
        NLIPair("A", "D", "neutral"),
        NLIPair("E", "F", "entailment"),  # E has no contradiction partner: no triplet
        NLIPair("G", "A ", "neutral"),  # neutral is unused; "A " is stripped to "A"
    ]
    assert build_triplets(pairs) == [("A", "B", "C"), ("B", "A", "C")]


def test_both_directions_are_registered():
    # H gets its entailment partner P only through the reverse direction of the first pair.
    pairs = [NLIPair("P", "H", "entailment"), NLIPair("H", "X", "contradiction")]
    assert build_triplets(pairs) == [("H", "P", "X"), ("P", "H", "X")]


def test_first_seen_order_and_count():
    pairs = [NLIPair(s, f"{s}-e", "entailment") for s in "cab"] + [NLIPair(s, f"{s}-c", "contradiction") for s in "abc"]
    triplets = build_triplets(pairs)
    assert [t[0] for t in triplets[::2]] == ["c", "a", "b"]
    assert len(triplets) == count_with_both_labels(pairs) == 6


def test_random_choice_is_seeded_and_order_free():
    ent = [NLIPair("S", f"e{i}", "entailment") for i in range(5)]
    con = [NLIPair("S", f"c{i}", "contradiction") for i in range(5)]
    first = build_triplets(ent + con, seed=3)
    assert first == build_triplets(ent[::-1] + con[::-1], seed=3)  # partner sets are sorted before drawing
    assert first[0][0] == first[1][1] == "S"
    assert {first[0][1], first[1][0]} <= {p.hypothesis for p in ent}
    assert {first[0][2], first[1][2]} <= {p.hypothesis for p in con}
    draws = {tuple(build_triplets(ent + con, seed=s)) for s in range(20)}
    assert len(draws) > 1


def test_unknown_label_is_rejected():
    with pytest.raises(ValueError, match=r"pairs\[0\].label: unknown label 'entailed'"):
        build_triplets([NLIPair("a", "b", "entailed")])


def test_real_snli_dev_test_count():
    pairs = read_nli_pairs(need_data("snli-senteval"))
    triplets = build_triplets(pairs, seed=0)
    print(f"SNLI dev+test: {len(pairs)} pairs -> {len(triplets)} triplets")
    assert len(triplets) == count_with_both_labels(pairs) == 11852
    assert triplets == build_triplets(pairs, seed=0)


def test_real_sick_train_count():
    pairs = read_nli_pairs(need_data("sick"), split="train")
    triplets = build_triplets(pairs)
    print(f"SICK train: {len(pairs)} pairs -> {len(triplets)} triplets")
    assert len(triplets) == count_with_both_labels(pairs) == 734
