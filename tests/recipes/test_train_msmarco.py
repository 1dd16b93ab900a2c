"""The MS MARCO recipe's data on a small folder in MS MARCO's own layout: SGPT's margin filter and
system choice against hand-worked results, the query options, the round-robin over epochs, and
the file checks."""

from __future__ import annotations

import gzip
import pickle
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))  # the layout lives with the data tests
from test_msmarco import CE, KEPT, PASSAGES, TRAIN, write_msmarco  # noqa: E402

from sgpt.data import RoundRobinExamples  # noqa: E402
from sgpt.data.msmarco import CE_SCORES, COLLECTION, DEV_QRELS, TRAIN_QUERIES  # noqa: E402
from sgpt.data.passages import PassageStore, PassageTexts  # noqa: E402
from sgpt.recipes.tasks import MSMarcoTask  # noqa: E402
from sgpt.recipes.train_msmarco import msmarco_examples, msmarco_files  # noqa: E402


def examples_of(folder: Path, **task) -> dict[str, tuple[list[str], list[str]]]:
    files = msmarco_files(folder)
    got = msmarco_examples(files, PassageStore(files.collection), MSMarcoTask(str(folder), **task), seed=0)
    assert all(e.query == TRAIN[e.query_id] for e in got)
    return {e.query_id: (e.positives, e.negatives) for e in got}


def test_margin_filter_and_systems_as_sgpt(tmp_path):
    folder = write_msmarco(tmp_path / "marco")
    assert examples_of(folder) == KEPT
    # 2 per system: 100 takes bm25 9, 10 and dense 5, 6 (9 was taken already)
    assert examples_of(folder, num_negs_per_system=2)["100"] == (["0"], ["9", "10", "5", "6"])
    # "late" is not among the first line's systems: only used when named, in the order given
    assert examples_of(folder, negs_to_use=("late",)) == {"101": (["1"], ["6"])}
    assert examples_of(folder, negs_to_use=("late", "bm25"))["101"] == (["1"], ["6", "2"])
    # margin 0.5: 101's threshold is 4.5, so 3 (2.5) passes too
    assert examples_of(folder, ce_score_margin=0.5)["101"] == (["1"], ["2", "3", "4"])


def test_use_all_queries_and_the_line_cap(tmp_path):
    folder = write_msmarco(tmp_path / "marco")
    everything = examples_of(folder, use_all_queries=True)
    assert list(everything) == ["100", "101", "107", "102", "103", "104", "105"]  # file order; 106 has no positive
    positives, negatives = everything["107"]  # no hard negative passes: one random passage, never its positive
    assert positives == ["7"] and len(negatives) == 1 and negatives[0] in {str(i) for i in range(12)} - {"7"}
    assert examples_of(folder, use_all_queries=True) == everything  # the draw is seeded
    assert list(examples_of(folder, train_dataset_max_size=2)) == ["100", "101"]  # lines read, not queries kept
    assert list(examples_of(folder, train_dataset_max_size=4)) == ["100", "101"]
    assert list(examples_of(folder, train_dataset_max_size=4, use_all_queries=True)) == ["100", "101", "107"]


def test_two_epochs_rotate_positives_and_negatives_round_robin(tmp_path):
    """SGPT's MSMARCODataset pops the front positive and (once-shuffled) negative of a query and
    pushes them back: epoch e uses positive e mod P and negative e mod N of that shuffled list."""
    folder = write_msmarco(tmp_path / "marco")
    files = msmarco_files(folder)
    store = PassageStore(files.collection)
    examples = msmarco_examples(files, store, MSMarcoTask(str(folder)), seed=0)
    data = PassageTexts(RoundRobinExamples(examples, negatives_per_query=1, seed=0), store)
    by_epoch = []
    for epoch in (0, 1):
        data.set_epoch(epoch)
        by_epoch.append({TRAIN[e.query_id]: data[i] for i, e in enumerate(examples)})
    glacier = TRAIN["103"]  # positives 3 then 10, negatives 0 and 4 in a shuffled order
    assert [by_epoch[e][glacier][1] for e in (0, 1)] == [PASSAGES[3], PASSAGES[10]]
    assert {by_epoch[e][glacier][2] for e in (0, 1)} == {PASSAGES[0], PASSAGES[4]}
    for qid, (positives, negatives) in KEPT.items():
        for e in (0, 1):
            query, pos, neg = by_epoch[e][TRAIN[qid]]
            assert query == TRAIN[qid] and pos == PASSAGES[int(positives[e % len(positives)])]
            assert neg in {PASSAGES[int(n)] for n in negatives}
        if len(negatives) > 1:  # two epochs never repeat a negative while unused ones are left
            assert by_epoch[0][TRAIN[qid]][2] != by_epoch[1][TRAIN[qid]][2]


def test_ids_missing_from_the_queries_or_collection_are_named(tmp_path):
    folder = write_msmarco(tmp_path / "marco")
    (folder / TRAIN_QUERIES).write_text("".join(f"{q}\t{t}\n" for q, t in TRAIN.items() if q != "104"))
    with pytest.raises(ValueError, match=r"1 queries without text in .*queries.train.tsv: '104'"):
        examples_of(folder)
    assert "104" not in examples_of(folder, skip_bad_rows=True)
    folder = write_msmarco(tmp_path / "short")
    (folder / COLLECTION).write_text("".join(f"{i}\t{t}\n" for i, t in enumerate(PASSAGES[:11])))
    with pytest.raises(ValueError, match=r"1 passages not in .*collection.tsv: '11'"):
        examples_of(folder)
    assert examples_of(folder, skip_bad_rows=True)["102"] == (["2"], ["3"])
    scores = {**CE, 102: {2: 8.0, 3: 1.0}}  # no score for 11
    (folder / CE_SCORES).write_bytes(gzip.compress(pickle.dumps(scores)))
    with pytest.raises(ValueError, match=r"hard-negatives.jsonl.gz:5: field \"neg\": no cross-encoder score"):
        examples_of(folder)


def test_missing_files_are_named_with_where_they_were_looked_for(tmp_path, monkeypatch):
    folder = write_msmarco(tmp_path / "marco")
    (folder / DEV_QRELS).unlink()
    msmarco_files(folder)  # the dev files are needed only with eval_dev
    with pytest.raises(FileNotFoundError, match=rf"^{folder / DEV_QRELS}: missing \(the dev judgments"):
        msmarco_files(folder, dev=True)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        msmarco_files(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="not a folder"):
        msmarco_files(folder / COLLECTION)
    import huggingface_hub.constants

    import sgpt.model.backbone

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sgpt.model.backbone, "hub_reachable", lambda *a, **k: False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with pytest.raises(FileNotFoundError) as info:
        msmarco_files("sentence-transformers/msmarco-hard-negatives")
    message = str(info.value)
    assert message.startswith(
        "--data sentence-transformers/msmarco-hard-negatives is not a folder here; the Hugging Face hub cannot "
        "be reached to download collection.tsv from the data set sentence-transformers/msmarco-hard-negatives"
    )
    assert str(tmp_path / "hub-cache") in message and "\n" not in message
    # a folder without the two sentence-transformers files: looked for there, then in the hub's cache
    (folder / CE_SCORES).unlink()
    with pytest.raises(FileNotFoundError) as info:
        msmarco_files(folder)
    assert str(info.value).startswith(f"{folder / CE_SCORES}: missing (the cross-encoder scores); the Hugging Face")
    assert f"download {CE_SCORES} from the data set sentence-transformers/msmarco-hard-negatives" in str(info.value)


def test_task_settings_are_checked_at_once():
    with pytest.raises(ValueError) as info:
        MSMarcoTask("d", num_negs_per_system=0, ce_score_margin=float("nan"), negs_to_use=())
    assert str(info.value) == (
        "invalid MS MARCO task: ce_score_margin must be a finite number, got nan; num_negs_per_system must be "
        ">= 1, got 0; negs_to_use must name at least one system and no empty one, got ()"
    )
