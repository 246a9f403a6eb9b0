import json
import math
import subprocess

import pytest

from animesion_lib.cli import main
from animesion_lib.reproduction import compare_numbers, reproduction_report, seed_noise


def write(root, profile, name, metrics, verdicts=None):
    folder = root / profile
    folder.mkdir(parents=True, exist_ok=True)
    record = {"experiment": name, "metrics": metrics}
    if verdicts:
        record["verdicts"] = verdicts
    (folder / f"{name}.json").write_text(json.dumps(record))


@pytest.fixture
def runs(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for s, top1 in enumerate([0.60, 0.62, 0.64]):  # std 0.02 -> tolerance 2*sqrt(2)*0.02 = 0.0566
        write(old, "cpu", f"rec-vit-s{s}", {"test.top1": top1, "train_images_per_s": 100.0 + s})
    write(old, "cpu", "rec-cnn", {"test.top1": 0.70})
    write(old, "cpu", "datasets", {"images": 400})
    write(old, "cpu", "curriculum", {"x": 1.0}, verdicts={"cosine": {"status": "better", "text": "A beats B"}})
    write(new, "cpu", "rec-vit-s0", {"test.top1": 0.65, "train_images_per_s": 999.0})   # within 0.0566
    write(new, "cpu", "rec-vit-s1", {"test.top1": 0.70})                                  # 0.08: moved
    write(new, "cpu", "rec-vit-s2", {"test.top1": 0.64})
    write(new, "cpu", "rec-cnn", {"test.top1": 0.75})       # pooled noise: within 0.0566
    write(new, "cpu", "datasets", {"images": 401})          # exact numbers must agree
    write(new, "cpu", "curriculum", {"x": 1.0}, verdicts={"cosine": {"status": "no effect", "text": "A = B"}})
    return old, new


def test_seed_noise_per_family_and_pooled(runs):
    old, _ = runs
    from animesion_lib.reproduction import read_records

    own, pooled = seed_noise(read_records(old, "cpu"))
    assert own[("rec-vit", "test.top1")] == pytest.approx(0.02)
    assert pooled["test.top1"] == pytest.approx(0.02)   # "test.top1" has no split prefix: its own kind
    assert ("rec-cnn", "test.top1") not in own


def test_numbers_are_read_against_their_own_noise(runs):
    found = reproduction_report(*runs, profile="cpu")
    table = found.numbers.set_index(["experiment", "metric"])
    assert table.loc[("rec-vit-s1", "test.top1"), "tolerance"] == pytest.approx(2 * math.sqrt(2) * 0.02)
    assert list(found.moved.experiment) == ["datasets", "rec-vit-s1"]
    assert table.loc[("rec-cnn", "test.top1"), "basis"] == "pooled seed noise of test.top1"
    assert table.loc[("datasets", "images"), "basis"] == "exact"
    assert "train_images_per_s" not in set(found.numbers.metric)   # speed is the machine's, not a result
    assert found.verdicts.to_dict("records") == [
        {"experiment": "curriculum", "verdict": "cosine", "committed": "A beats B", "fresh": "A = B"}]
    assert not found.reproduced
    assert "2 outside their seed-noise tolerance; 1 verdicts changed" in found.markdown()


def test_noise_is_pooled_by_kind_of_number_across_splits_and_text_modes(tmp_path):
    from animesion_lib.reproduction import kind

    assert [kind(m) for m in ("test_top1", "val_tags.top1", "test_drop50.mean_class_acc", "train_loss", "images")] == [
        "top1", "top1", "mean_class_acc", "loss", "images"]
    old, new = tmp_path / "old", tmp_path / "new"
    for s, top1 in enumerate([0.60, 0.62, 0.64]):
        write(old, "cpu", f"vit-s{s}", {"test_top1": top1})
    write(old, "cpu", "vilt", {"test_tags.top1": 0.50})
    write(new, "cpu", "vilt", {"test_tags.top1": 0.55})   # within 2*sqrt(2)*0.02 of the ViT seeds' noise
    row = reproduction_report(old, new, "cpu").numbers.set_index("experiment").loc["vilt"]
    assert row.basis == "pooled seed noise of top1" and bool(row.reproduced)


def test_identical_runs_reproduce(runs):
    old, _ = runs
    found = reproduction_report(old, old, profile="cpu")
    assert found.reproduced and len(found.numbers) == 6


def test_cli_reads_the_committed_records_from_git(tmp_path, runs, monkeypatch, capsys):
    old, new = runs
    repo = tmp_path / "repo"
    (repo / "results").mkdir(parents=True)
    subprocess.run(["cp", "-r", str(old / "cpu"), str(repo / "results")], check=True)
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "records")
    monkeypatch.chdir(repo)
    assert main(["reproduction-report", "--profile", "cpu"]) == 0          # working tree = HEAD
    assert main(["reproduction-report", "--profile", "cpu", "--fresh", str(new)]) == 1
    assert "verdicts changed" in capsys.readouterr().out
    assert main(["reproduction-report", "--profile", "cpu", "--revision", "nope"]) == 2
