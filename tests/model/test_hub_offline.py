"""A hub id that cannot be reached fails at once with one clear line, instead of retrying.

The network layer is replaced (no test depends on this machine's network): ``socket.create_connection``
refuses, the local Hugging Face cache is empty, and any download or transformers load would fail the
test, so a retry loop, or any second attempt, shows up in the call counts.
"""

from __future__ import annotations

import socket

import huggingface_hub
import pytest
from huggingface_hub import constants

import sgpt.model.backbone as backbone
from sgpt.cli import main
from sgpt.model.loader import load, resolve_hub_folder

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
def offline(monkeypatch) -> dict[str, int]:
    """No network and an empty cache; returns the call counts of each network entry point."""
    calls = {"connect": 0, "cache": 0, "download": 0}

    def refuse(address, timeout=None, *args, **kwargs):
        calls["connect"] += 1
        assert timeout is not None and timeout <= 10, "the reachability check must not wait long"
        raise OSError(-2, "Name or service not known")

    def empty_cache(repo_id, *args, local_files_only=False, **kwargs):
        calls["cache"] += 1
        assert local_files_only, "offline, only the local cache may be asked"
        raise huggingface_hub.errors.LocalEntryNotFoundError("not in the cache")

    def no_download(*args, **kwargs):
        calls["download"] += 1
        raise AssertionError("nothing may be downloaded once the hub is known to be unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    monkeypatch.setattr(backbone.urllib.request, "getproxies", lambda: {})
    monkeypatch.setattr(huggingface_hub, "snapshot_download", empty_cache)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    monkeypatch.setattr(backbone.AutoTokenizer, "from_pretrained", no_download)
    monkeypatch.setattr(backbone.AutoModel, "from_pretrained", no_download)
    return calls


def _check_message(text: str) -> None:
    assert "\n" not in text.strip()
    assert HUB_ID in text
    assert "cannot be reached" in text
    assert "models/all-minilm-l6-v2" in text


def test_unreachable_hub_id_fails_once_with_one_line(offline):
    with pytest.raises(ConnectionError) as err:
        resolve_hub_folder(HUB_ID)
    _check_message(str(err.value))
    assert offline == {"connect": 1, "cache": 1, "download": 0}  # one attempt, no retry loop


def test_load_and_load_backbone_fail_fast(offline):
    with pytest.raises(ConnectionError) as err:
        load(HUB_ID)
    _check_message(str(err.value))
    assert offline["download"] == 0 and offline["connect"] == 1
    with pytest.raises(ConnectionError):
        backbone.load_backbone(HUB_ID)
    assert offline["download"] == 0 and offline["connect"] == 2


def test_cli_prints_one_line(offline, tmp_path, capsys):
    data = tmp_path / "stsb"
    data.mkdir()
    (data / "sts-test.csv").write_text(
        "main-captions\tMSRvid\t2012test\t0001\t5.0\tA man plays.\tA man is playing.\n"
        "main-captions\tMSRvid\t2012test\t0002\t0.0\tA cat sleeps.\tThe stock fell.\n"
    )
    assert main(["eval", "sts", HUB_ID, "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sgpt: error: ")
    _check_message(err)
    assert offline["download"] == 0 and offline["connect"] == 1


def test_cached_snapshot_is_used_offline(offline, monkeypatch, tmp_path):
    """Offline, a hub id already in the local cache loads from there (no download)."""
    (tmp_path / "modules.json").write_text("[]")

    def cached(repo_id, *args, local_files_only=False, **kwargs):
        assert local_files_only
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cached)
    assert resolve_hub_folder(HUB_ID) == tmp_path
    assert offline["download"] == 0


def test_reachable_hub_keeps_hub_ids(monkeypatch):
    """With a network, a hub id is passed on unchanged (the libraries download it as usual)."""

    class Connection:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    seen = []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    monkeypatch.setattr(backbone.urllib.request, "getproxies", lambda: {})
    monkeypatch.setattr(socket, "create_connection", lambda address, timeout=None: seen.append(address) or Connection())
    assert backbone.resolve_hub_id(HUB_ID) == HUB_ID
    assert seen == [("huggingface.co", 443)]
