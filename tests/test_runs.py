import json

import pandas as pd
import pytest

from agent_lab.runs import _atomic_write, list_runs, load_run, write_json


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "meta.json"
    write_json(path, {"status": "running"})

    def broken(handle):
        handle.write('{"status": "comp')
        raise OSError("disk full")

    with pytest.raises(OSError):
        _atomic_write(path, broken)
    assert json.loads(path.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]  # no temporary file left behind


def test_load_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        load_run(tmp_path)
    assert isinstance(list_runs(tmp_path), pd.DataFrame) and list_runs(tmp_path).empty
