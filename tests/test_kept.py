"""Kept outputs of a finished job, restored by a resubmitted cluster job (clexp.kept)."""

from __future__ import annotations

import os

from clexp import kept


def _job(tmp_path):
    inputs = [tmp_path / "data.npz", tmp_path / "previous.pt"]
    for index, path in enumerate(inputs):
        path.write_bytes(bytes([index]) * 1000)
    outputs = [tmp_path / "out" / "checkpoint.pt", tmp_path / "out" / "train_log.csv"]
    outputs[0].parent.mkdir()
    outputs[0].write_bytes(b"weights")
    outputs[1].write_text("epoch,loss\n1,0.5\n")
    return inputs, outputs


def test_kept_outputs_come_back_as_the_same_files(tmp_path):
    inputs, outputs = _job(tmp_path)
    key = kept.job_key({"lr": 0.01}, {"task": "2"}, inputs)
    kept.keep(outputs, tmp_path / "kept", key)
    inode = os.stat(outputs[0]).st_ino
    for path in outputs:  # what Snakemake does to a failed group job's outputs
        path.unlink()
    assert kept.restore(outputs, tmp_path / "kept", key)
    assert outputs[0].read_bytes() == b"weights"
    assert outputs[1].read_text() == "epoch,loss\n1,0.5\n"
    assert os.stat(outputs[0]).st_ino == inode  # a hard link: no copy, no extra disk


def test_a_changed_input_setting_or_wildcard_changes_the_key(tmp_path):
    inputs, _ = _job(tmp_path)
    key = kept.job_key({"lr": 0.01}, {"task": "2"}, inputs)
    assert key == kept.job_key({"lr": 0.01}, {"task": "2"}, inputs)
    assert key != kept.job_key({"lr": 0.02}, {"task": "2"}, inputs)
    assert key != kept.job_key({"lr": 0.01}, {"task": "3"}, inputs)
    inputs[1].write_bytes(b"other weights")
    assert key != kept.job_key({"lr": 0.01}, {"task": "2"}, inputs)


def test_nothing_is_restored_for_another_key_or_a_folder_kept_halfway(tmp_path):
    inputs, outputs = _job(tmp_path)
    key = kept.job_key({}, {}, inputs)
    assert not kept.restore(outputs, tmp_path / "kept", key)  # nothing kept yet
    kept.keep(outputs, tmp_path / "kept", key)
    for path in outputs:
        path.unlink()
    assert not kept.restore(outputs, tmp_path / "kept", "another key")
    assert not any(path.exists() for path in outputs)
    (tmp_path / "kept" / kept.KEY_FILE).unlink()  # keep() writes the key last
    assert not kept.restore(outputs, tmp_path / "kept", key)
