"""The test harness itself (tests/conftest.py): real data skip vs fail, and one torch thread for every
fixture, whatever its scope (see the conftest docstring)."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO_ROOT, TORCH_THREADS, need_data, shared_data_root

# ---------------------------------------------------------------------------------------------- data


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """A stand-in shared data folder holding ``stsb/``, reached through ``SGPT_SHARED_DATA``."""
    (tmp_path / "data" / "stsb").mkdir(parents=True)
    monkeypatch.setenv("SGPT_SHARED_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def test_default_root_is_shared_data_next_to_the_repository(monkeypatch):
    monkeypatch.delenv("SGPT_SHARED_DATA", raising=False)
    assert shared_data_root() == REPO_ROOT.parent / "shared" / "data"
    assert REPO_ROOT == (REPO_ROOT / "tests").parent and (REPO_ROOT / "tests" / "conftest.py").is_file()


def test_present_data_is_returned(data_root, monkeypatch):
    for ci in ("true", None):
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        assert need_data("stsb") == data_root / "stsb"
        assert need_data() == data_root


@pytest.mark.parametrize("ci", [None, "false", "1"])
def test_missing_data_skips_outside_ci(data_root, monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="real data .*sick.* is not available .*SGPT_SHARED_DATA"):
        need_data("sick", "train")


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_missing_data_fails_under_ci(data_root, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="sick.*CI=true requires it"):
        need_data("sick")
    monkeypatch.setenv("SGPT_SHARED_DATA", str(data_root / "nowhere"))
    with pytest.raises(pytest.fail.Exception, match="nowhere"):
        need_data()  # the whole folder missing: what the shared_data fixture asks


def test_shared_data_fixture_is_the_root(shared_data):
    assert shared_data == shared_data_root() and shared_data.is_dir()


# ---------------------------------------------------------------------------------------------- threads
# The two tests below run in this order: the first leaves torch on another thread count, and the
# module-scoped fixture, first requested by the second test, must still be built on one thread.


def test_a_test_may_change_the_thread_count():
    assert torch.get_num_threads() == TORCH_THREADS
    torch.set_num_threads(TORCH_THREADS + 1)  # deliberately not restored


@pytest.fixture(scope="module")
def threads_seen_by_a_module_fixture() -> int:
    return torch.get_num_threads()


def test_module_scoped_fixtures_are_built_on_one_thread(threads_seen_by_a_module_fixture):
    assert threads_seen_by_a_module_fixture == TORCH_THREADS
    assert torch.get_num_threads() == TORCH_THREADS
