"""Tests for sgpt.data.sampling: NoDuplicatesBatchSampler and length_sorted_batches."""

from __future__ import annotations

import pytest
from conftest import need_data

from sgpt.data import NoDuplicatesBatchSampler, build_triplets, length_sorted_batches, read_nli_pairs


def assert_no_duplicates(examples, batches):
    for batch in batches:
        texts = [t.strip().lower() for i in batch for t in set(examples[i])]
        assert len(texts) == len(set(texts)), batch


def test_unique_texts_use_every_full_batch():
    examples = [(f"a{i}", f"p{i}", f"n{i}") for i in range(23)]
    sampler = NoDuplicatesBatchSampler(examples, 4, seed=1)
    batches = list(sampler)
    assert len(sampler) == len(batches) == 5
    assert all(len(b) == 4 for b in batches)
    assert len({i for b in batches for i in b}) == 20


def test_duplicates_never_share_a_batch_and_stay_in_pool():
    examples = [("a", "b"), (" A", "c"), ("d", "e"), ("f", "g")]  # 0 and 1 share "a" after strip/lower
    retained = 0
    for seed in range(30):
        batches = list(NoDuplicatesBatchSampler(examples, 2, seed=seed))
        assert_no_duplicates(examples, batches)
        if {0, 1} & set(batches[0]):
            # whichever of 0/1 was not taken (maybe skipped as a duplicate) fills the second batch
            assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]
            retained += 1
        else:
            # first batch = (2, 3); the pool left is 0 and 1, which clash: the incomplete batch is dropped
            assert batches == [batches[0]] and sorted(batches[0]) == [2, 3]
    assert retained > 0


def test_seed_and_epoch_determinism():
    examples = [(f"a{i}", f"p{i}") for i in range(50)]
    a = NoDuplicatesBatchSampler(examples, 8, seed=5)
    b = NoDuplicatesBatchSampler(examples, 8, seed=5)
    assert list(a) == list(b)
    epoch0 = list(a)
    a.set_epoch(1)
    assert list(a) != epoch0
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(NoDuplicatesBatchSampler(examples, 8, seed=4)) != epoch0


def test_drop_last_false_keeps_remainder():
    examples = [(f"a{i}", f"p{i}") for i in range(10)]
    sampler = NoDuplicatesBatchSampler(examples, 4, drop_last=False)
    batches = list(sampler)
    assert len(sampler) == len(batches) == 3
    assert sorted(len(b) for b in batches) == [2, 4, 4]


def test_all_duplicates_terminates():
    examples = [("x", "y")] * 6
    assert list(NoDuplicatesBatchSampler(examples, 2)) == []
    assert [len(b) for b in NoDuplicatesBatchSampler(examples, 2, drop_last=False)] == [1] * 6


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        NoDuplicatesBatchSampler([("a", "b")], 0)


def test_works_as_dataloader_batch_sampler():
    torch = pytest.importorskip("torch")
    examples = [(f"a{i}", f"p{i}") for i in range(9)]
    loader = torch.utils.data.DataLoader(examples, batch_sampler=NoDuplicatesBatchSampler(examples, 3), collate_fn=list)
    assert len(loader) == 3
    assert sorted(ex for batch in loader for ex in batch) == sorted(examples)


def test_real_snli_triplets_have_no_in_batch_duplicates():
    folder = need_data("snli-senteval")
    examples = build_triplets(read_nli_pairs(folder, split="dev"))
    sampler = NoDuplicatesBatchSampler(examples, 64, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == len(examples) // 64
    assert_no_duplicates(examples, batches)


def test_length_sorted_batches():
    assert length_sorted_batches([3, 1, 4, 1, 5], 2) == [[4, 2], [0, 1], [3]]
    assert length_sorted_batches([], 4) == []
    assert length_sorted_batches([2, 2, 2], 5) == [[0, 1, 2]]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        length_sorted_batches([1], 0)
