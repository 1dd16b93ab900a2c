"""Issue 10, text inputs: every command reads text files through ``sgpt.data.rows`` (BOM removed,
gzip read transparently, bad bytes and JSON array files reported as one line naming file and line)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from sgpt.cli import main
from sgpt.data.rows import DataFormatError, read_texts

TEXTS = ["The cat sleeps on the warm windowsill.", "Glaciers carve valleys over thousands of years.", "Short."]
BOM = "\ufeff"


def _jsonl(texts: list[str]) -> str:
    return "".join(json.dumps({"text": t, "id": i}, ensure_ascii=False) + "\n" for i, t in enumerate(texts))


def _encode(model: Path, src: Path, out: Path) -> np.ndarray:
    assert main(["encode", str(model), "--input", str(src), "--output", str(out)]) == 0
    return np.load(out)


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_bom_and_gzip_inputs_give_the_same_vectors(minilm_path, tmp_path):
    plain = tmp_path / "t.txt"
    plain.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    files = {
        "bom.txt": (BOM + "\r\n".join(TEXTS) + "\r\n").encode(),  # Windows Notepad: BOM and CRLF
        "bom.jsonl": (BOM + _jsonl(TEXTS)).encode(),
        "t.jsonl.gz": gzip.compress(_jsonl(TEXTS).encode()),
        "bom.txt.gz": gzip.compress((BOM + "\n".join(TEXTS) + "\n").encode()),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        assert read_texts(tmp_path / name, "text") == TEXTS, name  # the BOM is not part of the first text
    reference = _encode(minilm_path, plain, tmp_path / "plain.npy")
    assert reference.shape == (3, 384)
    for name in ("bom.txt", "bom.jsonl", "t.jsonl.gz"):
        np.testing.assert_array_equal(_encode(minilm_path, tmp_path / name, tmp_path / f"{name}.npy"), reference)


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        (
            "latin1.txt",
            "first line\ncaf\xe9 au lait\n".encode("latin-1"),
            ":2: not valid UTF-8 (byte 0xe9 at column 4)",
        ),
        (
            "latin1.jsonl",
            b'{"text": "ok"}\n{"text": "caf\xe9"}\n',
            ":2: not valid UTF-8 (byte 0xe9 at column 14)",
        ),
    ],
)
def test_bytes_that_are_not_utf8_name_file_and_line(minilm_path, tmp_path, capsys, name, content, where):
    src = tmp_path / name
    src.write_bytes(content)
    out = tmp_path / "e.npy"
    assert main(["encode", str(minilm_path), "--input", str(src), "--output", str(out)]) == 2
    assert _error(capsys) == f"sgpt: error: {src}{where}"
    assert not out.exists()


def test_a_corrupt_gzip_names_the_file(minilm_path, tmp_path, capsys):
    src = tmp_path / "t.jsonl.gz"
    src.write_bytes(gzip.compress(_jsonl(TEXTS * 50).encode())[:60])  # truncated download
    assert main(["encode", str(minilm_path), "--input", str(src), "--output", str(tmp_path / "e.npy")]) == 2
    err = _error(capsys)
    assert err.startswith(f"sgpt: error: {src}:") and "unreadable gzip data" in err


@pytest.mark.parametrize(
    "content",
    [
        json.dumps([{"text": t} for t in TEXTS]) + "\n",  # one line
        json.dumps([{"text": t} for t in TEXTS], indent=2) + "\n",  # pretty-printed
    ],
)
def test_a_json_array_file_is_named_as_such(minilm_path, tmp_path, capsys, content):
    src = tmp_path / "t.jsonl"
    src.write_text(content)
    assert main(["encode", str(minilm_path), "--input", str(src), "--output", str(tmp_path / "e.npy")]) == 2
    err = _error(capsys)
    assert err.startswith(f"sgpt: error: {src}:1: this is a JSON array, not JSON Lines") and "jq -c" in err
    with pytest.raises(DataFormatError, match="this is a JSON array, not JSON Lines") as info:
        read_texts(src, "text")
    assert info.value.line == 1


def test_a_missing_field_names_the_fields_found(tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text('{"text": "ok"}\n\n{"sentence": "no"}\n')
    with pytest.raises(DataFormatError) as info:
        read_texts(src, "text")
    assert str(info.value) == f"{src}:3: missing field 'text' (fields of this row: 'sentence')"
