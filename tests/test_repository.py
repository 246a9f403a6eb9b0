"""Finding the book's repository without ``__file__``."""

import json
from pathlib import Path

import pytest

from animesion_book import repository


class FakeDist:
    def __init__(self, direct_url):
        self.direct_url = direct_url

    def read_text(self, name):
        return json.dumps(self.direct_url) if name == "direct_url.json" and self.direct_url else None


def test_install_source_skips_an_egg_info_without_direct_url(monkeypatch, tmp_path):
    # a source tree on PYTHONPATH: its build's egg-info is found before the installed dist-info
    found = [FakeDist(None), FakeDist({"url": tmp_path.as_uri(), "dir_info": {"editable": True}})]
    monkeypatch.setattr(repository.metadata, "distributions", lambda name: iter(found))
    assert repository.install_source() == tmp_path


def test_no_local_install_gives_none(monkeypatch):
    monkeypatch.setattr(repository.metadata, "distributions", lambda name: iter([FakeDist(None)]))
    assert repository.install_source() is None


def test_outside_the_clone_the_install_folder_is_the_repository(monkeypatch, tmp_path):
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.delenv(repository.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(repository, "install_source", lambda: repo)
    assert repository.find_repository() == repo
    monkeypatch.setattr(repository, "install_source", lambda: None)
    with pytest.raises(FileNotFoundError, match="cannot find the Animesion Book repository"):
        repository.find_repository()
