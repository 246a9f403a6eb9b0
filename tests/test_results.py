"""Results records: complete, validated, readable back as a table."""

from __future__ import annotations

import json

import pytest

from animesion_lib.results import (
    REQUIRED_FIELDS,
    RecordError,
    load_record,
    load_records,
    make_record,
    validate_record,
    write_record,
)


def _record(experiment="vit_tiny", top1=0.5):
    return make_record(
        experiment=experiment,
        profile="smoke",
        kind="train",
        config={"model": "vit_tiny_p8", "epochs": 2},
        seed=0,
        metrics={"top1": top1, "top5": 0.9},
        curves=[{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.5}],
        wall_time_s=3.5,
        throughput={"train_images_per_s": 100.0},
        device={"type": "cpu", "precision": "fp32"},
        data_fingerprint="abc123",
    )


def test_record_has_every_field_and_round_trips(tmp_path):
    record = _record()
    assert set(REQUIRED_FIELDS) <= set(record)
    assert record["versions"]["torch"] and record["versions"]["python"]
    path = write_record(record, tmp_path)
    assert path == tmp_path / "smoke" / "vit_tiny.json"
    assert path.with_suffix(".csv").read_text().splitlines()[0] == "epoch,train_loss"
    assert load_record(path) == json.loads(json.dumps(record))


@pytest.mark.parametrize("field", ["metrics", "git_commit", "data_fingerprint", "seed", "curves"])
def test_validate_record_catches_a_missing_field(field):
    record = _record()
    del record[field]
    with pytest.raises(RecordError, match=field):
        validate_record(record)


def test_validate_record_catches_wrong_types():
    record = _record()
    record["seed"] = "0"
    with pytest.raises(RecordError, match="seed"):
        validate_record(record)
    record = _record()
    record["metrics"]["top1"] = "high"
    with pytest.raises(RecordError, match="top1"):
        validate_record(record)


def test_load_records_gives_one_row_per_record(tmp_path):
    write_record(_record("b_run", 0.25), tmp_path)
    write_record(_record("a_run", 0.75), tmp_path)
    (tmp_path / "smoke" / "broken.json").write_text('{"experiment": "x"}')
    with pytest.raises(RecordError, match="broken.json"):
        load_records(tmp_path)
    (tmp_path / "smoke" / "broken.json").unlink()
    frame = load_records(tmp_path)
    assert frame["experiment"].tolist() == ["a_run", "b_run"]
    assert frame["metrics.top1"].tolist() == [0.75, 0.25]
    assert frame["config.model"].tolist() == ["vit_tiny_p8"] * 2
    assert len(frame.loc[0, "curves"]) == 2
