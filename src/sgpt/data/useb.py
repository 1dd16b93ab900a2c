"""Read the USEB evaluation data (SPEC 3.4) in the layout of USEB's ``data-eval`` folder.

``ROOT/<task>/...`` as the official ``data-eval.zip`` unpacks (kwang2049/useb, ``useb/evaluators/*.py``);
every file may also be gzipped (``NAME.gz``):

* ``askubuntu/text_tokenized.txt`` (``id TAB title TAB body``) and ``askubuntu/test.txt`` (``query id TAB
  similar ids TAB candidate ids TAB candidate BM25 scores``, ids and scores space-separated);
* ``cqadupstack/corpus.json`` (``{forum: {id: text}}``) and ``cqadupstack/retrieval_split.json``
  (``{"valid"|"test": {forum: {query id: [duplicate ids]}}}``);
* ``twitterpara/Twitter_URL_Corpus_test.txt`` (Twitter-URL: ``tweet TAB tweet TAB (n,6) TAB url``, n of 6
  annotators said paraphrase; blank lines between URL groups) and ``twitterpara/test.data`` (PIT-2015:
  ``topic id TAB topic TAB sentence TAB sentence TAB expert label 0-5 TAB tags...``);
* ``scidocs/data.json`` (``{"corpus": {id: {"title": ...}}, "valid"|"test": {part: {query id: {doc id:
  relevance}}}}``, parts ``cite``, ``cocite``, ``coread``, ``coview``).

A task whose folder (or, for TwitterPara, both files) is absent is *missing*; a task folder that is
there but lacks a file it needs is an error. Evaluation data is read strictly: a bad row raises
:class:`~sgpt.data.rows.DataFormatError` naming the file, the line (or JSON key) and the field.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sgpt.data.rows import DataFormatError, check_utf8, clean_text, iter_nonblank
from sgpt.utils.io import json_error_text

__all__ = [
    "CQADUPSTACK_FORUMS",
    "SCIDOCS_PARTS",
    "TWITTERPARA_PARTS",
    "USEB_TASKS",
    "AskUbuntuData",
    "AskUbuntuQuery",
    "ForumData",
    "ParaphrasePairs",
    "SciDocsPart",
    "UsebData",
    "read_askubuntu",
    "read_cqadupstack",
    "read_pit",
    "read_scidocs",
    "read_twitter_url",
    "read_useb",
]

USEB_TASKS = ("askubuntu", "cqadupstack", "twitterpara", "scidocs")
CQADUPSTACK_FORUMS = (
    "android",
    "english",
    "gaming",
    "gis",
    "mathematica",
    "physics",
    "programmers",
    "stats",
    "tex",
    "unix",
    "webmasters",
    "wordpress",
)
TWITTERPARA_PARTS = ("twitterurl", "pit")
SCIDOCS_PARTS = ("cite", "cocite", "coread", "coview")
SPLITS = ("valid", "test")

_VOTES = re.compile(r"^\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


@dataclass(frozen=True)
class AskUbuntuQuery:
    """One AskUbuntu query: its gold duplicates and its candidates in BM25 order (best first)."""

    qid: str
    similar: tuple[str, ...]
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class AskUbuntuData:
    """AskUbuntu re-ranking: ``texts`` (id -> title) covers every query and candidate."""

    texts: dict[str, str]
    queries: list[AskUbuntuQuery]
    n_without_similar: int  # queries of the file with no gold duplicate (left out, as USEB does)


@dataclass(frozen=True)
class ForumData:
    """One CQADupStack forum: queries, the pool (the forum's posts minus all the queries), duplicates."""

    name: str
    queries: dict[str, str]
    docs: dict[str, str]
    relevant: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class ParaphrasePairs:
    """Tweet pairs with the annotators' votes; ``labels`` 1 = paraphrase, 0 = not, None = dropped (n = 3)."""

    name: str
    sentences1: list[str]
    sentences2: list[str]
    votes: list[int]
    labels: list[int | None]

    def __len__(self) -> int:
        return len(self.votes)


@dataclass(frozen=True)
class SciDocsPart:
    """One SciDocs part (cite, cocite, coread, coview): query title, candidate titles, trec-style qrels.

    ``queries[qid]`` lists the candidates that have a title, in file order; ``qrels`` keeps every
    judgment (candidates without a title still count as relevant documents in MAP, as in USEB).
    """

    name: str
    titles: dict[str, str]
    queries: dict[str, list[str]]
    qrels: dict[str, dict[str, int]]


@dataclass(frozen=True)
class UsebData:
    """The USEB tasks found under a folder (``None`` = not found)."""

    root: Path
    askubuntu: AskUbuntuData | None = None
    cqadupstack: list[ForumData] | None = None
    twitterpara: list[ParaphrasePairs] | None = None
    scidocs: list[SciDocsPart] | None = None
    tasks_missing: list[str] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        """The tasks present, in USEB order."""
        return [t for t in USEB_TASKS if getattr(self, t) is not None]


def read_useb(root: str | Path, tasks: tuple[str, ...] | list[str] = USEB_TASKS, split: str = "test") -> UsebData:
    """Read every task of ``tasks`` found under ``root`` (USEB's ``data-eval`` layout, see the module doc).

    ``root`` may also be one task folder itself (``.../twitterpara``).

    Raises:
        ValueError: an unknown task or split, or none of ``tasks`` is under ``root``.
        FileNotFoundError: ``root`` does not exist.
        DataFormatError: a task folder lacks a file, or a bad row (file, line and field named).
    """
    root = Path(root)
    bad = [t for t in tasks if t not in USEB_TASKS]
    if bad:
        raise ValueError(f"unknown USEB task(s) {', '.join(map(repr, bad))} (expected some of {', '.join(USEB_TASKS)})")
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    folders = {t: root / t for t in tasks if (root / t).is_dir()}
    if not folders and root.name in tasks:  # a task folder given itself
        folders = {root.name: root}
    readers = {
        "askubuntu": lambda f: read_askubuntu(f, split),
        "cqadupstack": lambda f: read_cqadupstack(f, split),
        "twitterpara": lambda f: _read_twitterpara(f),
        "scidocs": lambda f: read_scidocs(f, split),
    }
    found: dict[str, Any] = {}
    for task, folder in folders.items():
        found[task] = readers[task](folder)
    missing = [t for t in tasks if found.get(t) is None]
    if len(missing) == len(tasks):
        expected = ", ".join(f"{root}/{t}/" for t in tasks)
        raise ValueError(f"{root}: no USEB task found (looked for {expected} as in USEB's data-eval folder)")
    return UsebData(root=root, tasks_missing=missing, **found)


def _file(folder: Path, name: str, *, required: bool = True) -> Path | None:
    """``folder/name`` or ``folder/name.gz``; a required one that is absent raises."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    if required:
        raise DataFormatError(folder, None, None, f"missing {name} (or {name}.gz): not a USEB {folder.name} folder")
    return None


def _fields(line: str, path: Path, lineno: int, n: int, names: str) -> list[str]:
    """At least ``n`` tab-separated fields of a line (stripped as USEB does)."""
    items = check_utf8(line, path, lineno).strip().split("\t")
    if len(items) < n:
        raise DataFormatError(path, lineno, None, f"expected {n} tab-separated fields ({names}), got {len(items)}")
    return items


# ---------------------------------------------------------------- AskUbuntu
def read_askubuntu(folder: str | Path, split: str = "test") -> AskUbuntuData:
    """AskUbuntu titles and the re-ranking queries of ``split`` (``test.txt`` or ``dev.txt``).

    As USEB: candidates are put in BM25 order (score descending, ties in file order), queries
    without a gold duplicate are left out, texts are titles (stripped; may be empty).

    Raises:
        DataFormatError: a missing file, a row without 4 fields, candidates and scores of
            different counts, a score that is not a number, an id not in ``text_tokenized.txt``, or
            a query none of whose duplicates is among its candidates.
    """
    folder = Path(folder)
    pool_path = _file(folder, "text_tokenized.txt")
    eval_path = _file(folder, "test.txt" if split == "test" else "dev.txt")
    assert pool_path is not None and eval_path is not None  # required
    queries, lines, skipped = [], {}, 0
    for lineno, line in iter_nonblank(eval_path):
        query = _askubuntu_query(line, eval_path, lineno)
        if query is None:
            skipped += 1
            continue
        queries.append(query)
        lines[query.qid] = lineno
    needed = {i for q in queries for i in (q.qid, *q.candidates)}
    texts: dict[str, str] = {}
    for lineno, line in iter_nonblank(pool_path):
        items = line.split("\t", 2)
        if len(items) < 3:
            raise DataFormatError(pool_path, lineno, None, "expected 3 tab-separated fields (id, title, body)")
        if items[0].strip() in needed:
            texts[items[0].strip()] = check_utf8(items[1], pool_path, lineno, "title").strip()
    for q in queries:
        unknown = [i for i in (q.qid, *q.candidates) if i not in texts]
        if unknown:
            raise DataFormatError(eval_path, lines[q.qid], None, f"id {unknown[0]!r} is not in {pool_path.name}")
    return AskUbuntuData(texts=texts, queries=queries, n_without_similar=skipped)


def _askubuntu_query(line: str, path: Path, lineno: int) -> AskUbuntuQuery | None:
    qid, similar, candidates, scores = _fields(line, path, lineno, 4, "id, similar, candidates, BM25 scores")[:4]
    try:
        bm25 = [float(s) for s in scores.split()]
    except ValueError as err:
        raise DataFormatError(path, lineno, "bm25 scores", f"not a number ({err})") from None
    cands = candidates.split()
    if len(bm25) != len(cands):
        raise DataFormatError(path, lineno, "bm25 scores", f"{len(bm25)} scores for {len(cands)} candidates")
    gold = tuple(similar.split())
    if not gold:
        return None
    order = sorted(range(len(cands)), key=lambda i: -bm25[i])  # stable: ties keep file order, as USEB
    ranked = tuple(cands[i] for i in order)
    if not set(gold) & set(ranked):
        raise DataFormatError(path, lineno, "similar", "none of the similar ids is among the candidates")
    return AskUbuntuQuery(qid=qid.strip(), similar=gold, candidates=ranked)


# ---------------------------------------------------------------- CQADupStack
def read_cqadupstack(folder: str | Path, split: str = "test") -> list[ForumData]:
    """The CQADupStack forums of ``split`` in ``corpus.json`` order (those both files have).

    As USEB: a forum's queries are the ids of ``retrieval_split[split][forum]``; its pool is the
    forum's posts minus those queries.

    Raises:
        DataFormatError: a missing file, invalid JSON, a value of the wrong type (the key path named
            as the field), or a query id that is not in the forum's corpus.
    """
    folder = Path(folder)
    corpus_path, split_path = _file(folder, "corpus.json"), _file(folder, "retrieval_split.json")
    assert corpus_path is not None and split_path is not None  # required
    corpus = _json_dict(_read_json(corpus_path), corpus_path, "")
    splits = _json_dict(_read_json(split_path), split_path, "")
    qrels_by_forum = _json_dict(splits.get(split), split_path, split)
    forums = []
    for forum, posts in corpus.items():
        if forum not in qrels_by_forum:
            continue
        texts = {
            str(k): _json_text(v, corpus_path, f"{forum}.{k}") for k, v in _json_dict(posts, corpus_path, forum).items()
        }
        relevant = {}
        for qid, dids in _json_dict(qrels_by_forum[forum], split_path, f"{split}.{forum}").items():
            where = f"{split}.{forum}.{qid}"
            if not isinstance(dids, list):
                raise DataFormatError(split_path, None, where, f"expected a list of ids, got {type(dids).__name__}")
            if qid not in texts:
                raise DataFormatError(split_path, None, where, f"query id not in {corpus_path.name} ({forum})")
            relevant[qid] = tuple(str(d) for d in dids)
        queries = {qid: texts[qid] for qid in relevant}
        docs = {k: v for k, v in texts.items() if k not in relevant}
        forums.append(ForumData(name=forum, queries=queries, docs=docs, relevant=relevant))
    if not forums:
        raise DataFormatError(split_path, None, split, f"no forum of {corpus_path.name} has {split} queries")
    return forums


def _read_json(path: Path) -> Any:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, None, f"invalid JSON ({json_error_text(err)})") from None
    except (UnicodeDecodeError, EOFError, OSError) as err:
        raise DataFormatError(path, None, None, f"unreadable ({err})") from None


def _json_dict(value: Any, path: Path, where: str) -> dict:
    if not isinstance(value, dict):
        got = "nothing" if value is None else type(value).__name__
        raise DataFormatError(path, None, where or None, f"expected a JSON object, got {got}")
    return value


def _json_text(value: Any, path: Path, where: str) -> str:
    if not isinstance(value, str):
        raise DataFormatError(path, None, where, f"expected a string, got {type(value).__name__}")
    return value.strip()


# ---------------------------------------------------------------- TwitterPara
def _read_twitterpara(folder: Path) -> list[ParaphrasePairs] | None:
    url, pit = _file(folder, "Twitter_URL_Corpus_test.txt", required=False), _file(folder, "test.data", required=False)
    parts = ([read_twitter_url(url)] if url else []) + ([read_pit(pit)] if pit else [])
    return parts or None


def _binary(votes: int) -> int | None:
    """USEB's label of a vote count: > 3 paraphrase (1), < 3 not (0), 3 dropped (None)."""
    return None if votes == 3 else int(votes > 3)


def read_twitter_url(path: str | Path) -> ParaphrasePairs:
    """Twitter-URL test pairs (``Twitter_URL_Corpus_test.txt[.gz]``); blank lines are skipped.

    Label ``(n,6)``: n of 6 annotators said paraphrase; n > 3 → 1, n < 3 → 0, n = 3 → dropped from AP
    (kept for Spearman), as in USEB's ``TwitterURLData``.

    Raises:
        DataFormatError: fewer than 3 fields, an empty tweet, or a label that is not ``(n,m)`` with 0 <= n <= m.
    """
    path = Path(path)
    s1, s2, votes = [], [], []
    for lineno, line in iter_nonblank(path):
        a, b, label = _fields(line, path, lineno, 3, "tweet, tweet, (n,6) label, url")[:3]
        match = _VOTES.match(label.strip())
        if not match or int(match.group(1)) > int(match.group(2)):
            raise DataFormatError(path, lineno, "label", f"expected (n,6), n of 6 annotators, got {label!r}")
        s1.append(clean_text(a, path, lineno, "sentence1"))
        s2.append(clean_text(b, path, lineno, "sentence2"))
        votes.append(int(match.group(1)))
    return ParaphrasePairs("twitterurl", s1, s2, votes, [_binary(v) for v in votes])


def read_pit(path: str | Path) -> ParaphrasePairs:
    """PIT-2015 test pairs (``test.data[.gz]``): sentences in fields 3 and 4, the expert label 0-5 in field 5.

    Label > 3 → 1, < 3 → 0, 3 → dropped from AP (kept for Spearman), as in USEB's ``PITData``.

    Raises:
        DataFormatError: fewer than 5 fields, an empty sentence, or a label that is not an integer 0-5.
    """
    path = Path(path)
    s1, s2, votes = [], [], []
    for lineno, line in iter_nonblank(path):
        items = _fields(line, path, lineno, 5, "topic id, topic, sentence, sentence, label")
        label = items[4].strip()
        if not label.isdigit() or int(label) > 5:
            raise DataFormatError(path, lineno, "label", f"expected an integer 0-5, got {label!r}")
        s1.append(clean_text(items[2], path, lineno, "sentence1"))
        s2.append(clean_text(items[3], path, lineno, "sentence2"))
        votes.append(int(label))
    return ParaphrasePairs("pit", s1, s2, votes, [_binary(v) for v in votes])


# ---------------------------------------------------------------- SciDocs
def read_scidocs(folder: str | Path, split: str = "test") -> list[SciDocsPart]:
    """The SciDocs parts of ``split`` from ``data.json``, in file order.

    As USEB: texts are titles; a query without a title is left out, a candidate without one is not
    ranked (but stays in the qrels).

    Raises:
        DataFormatError: a missing file, invalid JSON, or a value of the wrong type (key path named).
    """
    folder = Path(folder)
    path = _file(folder, "data.json")
    assert path is not None  # required
    data = _json_dict(_read_json(path), path, "")
    corpus = _json_dict(data.get("corpus"), path, "corpus")
    parts = []
    for name, qrel in _json_dict(data.get(split), path, split).items():
        titles: dict[str, str] = {}
        queries: dict[str, list[str]] = {}
        qrels: dict[str, dict[str, int]] = {}
        for qid, docs in _json_dict(qrel, path, f"{split}.{name}").items():
            judged = {}
            for did, rel in _json_dict(docs, path, f"{split}.{name}.{qid}").items():
                if not isinstance(rel, int) or isinstance(rel, bool):
                    raise DataFormatError(
                        path, None, f"{split}.{name}.{qid}.{did}", f"expected an integer, got {rel!r}"
                    )
                judged[did] = rel
            qrels[qid] = judged
            query = _title(corpus, qid, path)
            if not query:
                continue
            titles[qid] = query
            queries[qid] = [did for did in judged if _title(corpus, did, path)]
            titles.update({did: _title(corpus, did, path) for did in queries[qid]})
        parts.append(SciDocsPart(name=name, titles=titles, queries=queries, qrels=qrels))
    if not parts:
        raise DataFormatError(path, None, split, "no parts")
    return parts


def _title(corpus: dict, pid: str, path: Path) -> str:
    """A paper's title, stripped; ``""`` for a paper not in the corpus or without a title (USEB ``_get_sent``)."""
    paper = corpus.get(pid)
    if paper is None:
        return ""
    title = _json_dict(paper, path, f"corpus.{pid}").get("title")
    return "" if title is None else _json_text(title, path, f"corpus.{pid}.title")
