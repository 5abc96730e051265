"""Archived runs: slim copies without checkpoints, restored into a store that then serves them."""
import importlib
import json

import pandas as pd
import pytest

from agent_lab.errors import RunStoreError
from agent_lab.experiments import archive_run, has_weights, is_archived, open_run, restore_run
from agent_lab.cli import main
from agent_lab.runs import DamagedRunError, list_runs, load_run, read_json
from agent_lab.train import train

train_module = importlib.import_module("agent_lab.train")
SPARSE = dict(pipeline="set", sparsity=0.9, update_every=4)


@pytest.fixture(scope="module")
def finished(tiny_config, tmp_path_factory):
    """A completed sparse run (so it has a side table), trained once: the tests only read it."""
    result = train(tiny_config.replace(**SPARSE), out=tmp_path_factory.mktemp("store") / "runs", progress=False)
    assert result.status == "completed"
    return result


def _no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a run was trained")
    monkeypatch.setattr(train_module, "prepare", refuse)


def test_the_archive_keeps_every_file_but_the_checkpoint_and_records_its_digest(finished, tmp_path):
    folder = archive_run(finished.run_dir, tmp_path / "archive")
    assert folder == tmp_path / "archive" / finished.run_dir.name
    names = {p.name for p in folder.iterdir()}
    assert names == {"config.json", "history.csv", "layer_density.csv", "meta.json"}
    meta, original = read_json(folder / "meta.json"), read_json(finished.run_dir / "meta.json")
    assert set(meta["files"]) == {"history.csv", "layer_density.csv"}
    assert meta["files"]["history.csv"] == original["files"]["history.csv"]
    assert meta["archived"]["checkpoints"] == {"checkpoint.pt": original["files"]["checkpoint.pt"]}
    assert (folder / "config.json").read_text() == (finished.run_dir / "config.json").read_text()
    assert sum(p.stat().st_size for p in folder.iterdir()) < 50_000
    assert not list((tmp_path / "archive").glob(".*"))  # no staging folder left


def test_a_restored_run_is_served_as_it_was_and_nothing_is_trained(finished, tmp_path, monkeypatch, capsys):
    folder = archive_run(finished.run_dir, tmp_path / "archive")
    restored = restore_run(folder, tmp_path / "fresh")
    assert is_archived(restored) and restored.status == "completed"
    _no_training(monkeypatch)
    served = train(finished.config, out=tmp_path / "fresh", progress=False)
    assert served.status == "completed" and is_archived(served)
    pd.testing.assert_frame_equal(served.history, finished.history, check_exact=True)
    assert not (served.run_dir / "checkpoint.pt").exists()
    assert list_runs(tmp_path / "fresh")["archived"].tolist() == [True]
    assert main(["runs", "--out", str(tmp_path / "fresh")]) == 0
    assert "completed (archived)" in capsys.readouterr().out


def test_what_needs_the_weights_names_the_remedy_and_the_remedy_works(finished, tmp_path):
    restored = restore_run(archive_run(finished.run_dir, tmp_path / "archive"), tmp_path / "fresh")
    assert has_weights(finished.run_dir) and not has_weights(restored.run_dir)
    assert not has_weights(tmp_path / "nothing-here")
    with pytest.raises(FileNotFoundError, match=r"restored from an archive.*--no-resume"):
        open_run(restored.run_dir)
    again = train(finished.config, out=tmp_path / "fresh", progress=False, resume=False)
    assert (again.run_dir / "checkpoint.pt").exists() and not is_archived(again)
    columns = ["epoch", "train_loss", "test_acc", "fwd_bwd", "density"]
    pd.testing.assert_frame_equal(again.history[columns], finished.history[columns], check_exact=True)
    open_run(again.run_dir)


def test_a_damaged_archived_copy_is_refused_and_nothing_is_written(finished, tmp_path):
    folder = archive_run(finished.run_dir, tmp_path / "archive")
    history = folder / "history.csv"
    history.write_text(history.read_text().replace("\n1,", "\n9,", 1))
    with pytest.raises(DamagedRunError, match="history.csv"):
        restore_run(folder, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists() or not list((tmp_path / "fresh").iterdir())


def test_unfinished_runs_are_not_archived(tiny_config, tmp_path):
    interrupted = train(tiny_config, out=tmp_path / "runs", progress=False, stop_after_epoch=1)
    assert interrupted.status == "interrupted" and not has_weights(interrupted.run_dir)
    with pytest.raises(RunStoreError, match="interrupted.*only finished runs"):
        archive_run(interrupted.run_dir, tmp_path / "archive")
    assert not (tmp_path / "archive" / interrupted.run_dir.name).exists()


def test_a_stored_run_is_never_overwritten_and_a_renamed_copy_is_refused(finished, tmp_path):
    folder = archive_run(finished.run_dir, tmp_path / "archive")
    with pytest.raises(RunStoreError, match="exists already"):
        restore_run(folder, finished.run_dir.parent)
    renamed = folder.rename(folder.parent / "another-name")
    with pytest.raises(RunStoreError, match="renamed or its config.json edited"):
        restore_run(renamed, tmp_path / "fresh")


def test_archiving_again_replaces_the_older_copy(finished, tmp_path):
    folder = archive_run(finished.run_dir, tmp_path / "archive")
    (folder / "stale.csv").write_text("x\n1\n")
    meta = json.loads((folder / "meta.json").read_text())
    assert archive_run(finished.run_dir, tmp_path / "archive") == folder
    assert not (folder / "stale.csv").exists()
    assert load_run(folder, verify="full").meta["files"] == meta["files"]


def test_an_archive_path_through_a_file_is_refused_naming_the_file(finished, tmp_path):
    blocking = tmp_path / "archive.txt"
    blocking.write_text("not a folder\n")
    with pytest.raises(RunStoreError, match=r"archive.txt is a file"):
        archive_run(finished.run_dir, blocking / "cpu")
    assert blocking.read_text() == "not a folder\n"


def test_archiving_an_unchanged_run_again_leaves_its_copy_and_date_alone(finished, tmp_path):
    folder = archive_run(finished.run_dir, tmp_path / "archive")
    meta = folder / "meta.json"
    dated = json.loads(meta.read_text())
    dated["archived"]["date"] = "2000-01-01T00:00:00+00:00"  # as if archived long ago
    meta.write_text(json.dumps(dated))
    before = meta.read_bytes()
    assert archive_run(finished.run_dir, tmp_path / "archive") == folder
    assert meta.read_bytes() == before


def test_a_restored_run_archived_again_keeps_the_record_of_its_checkpoint(finished, tmp_path):
    folder = archive_run(finished.run_dir, tmp_path / "archive")
    restored = restore_run(folder, tmp_path / "fresh")
    again = archive_run(restored.run_dir, tmp_path / "archive2")
    record = read_json(again / "meta.json")["archived"]["checkpoints"]
    assert record == read_json(folder / "meta.json")["archived"]["checkpoints"] != {}
