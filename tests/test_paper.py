"""agent_lab.paper: the 35 artifacts of the paper as specs, `agent-lab list` and its numbers."""
import pandas as pd
import pytest

from agent_lab.cli import main
from agent_lab.paper import ARTIFACTS, MISSING, ArtifactSpec, artifact_table, paper_numbers

IDS = [f"table{i}" for i in range(1, 9)] + [f"fig{i}" for i in range(1, 28)]


def test_every_table_and_figure_of_the_paper_has_a_spec_in_paper_order():
    assert list(ARTIFACTS) == IDS
    for spec in ARTIFACTS.values():
        assert spec.title and spec.where and spec.setting and spec.claims
        assert all(claim.endswith(".") for claim in spec.claim_texts)  # one sentence each
        assert all(claim.check is not None for claim in spec.claims)  # every claim is decided by data


def test_specs_refuse_bad_ids_and_missing_claims():
    with pytest.raises(ValueError, match="table<N> or fig<N>"):
        ArtifactSpec("figure1", "t", "w", "s", ("a claim.",))
    with pytest.raises(ValueError, match="at least one claim"):
        ArtifactSpec("fig1", "t", "w", "s", ())


def test_every_table_has_numbers_or_says_what_it_lost():
    table = artifact_table()
    assert table["id"].tolist() == IDS
    printed = set(paper_numbers()["artifact"])
    for spec in ARTIFACTS.values():
        if spec.kind == "table":
            assert spec.id in printed or spec.id in MISSING
    assert (table.loc[table["kind"] == "figure", "paper_numbers"] == 0).all()


def test_list_shows_all_ids_with_their_claims(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for spec in ARTIFACTS.values():
        assert f"{spec.id} " in out
        for claim in spec.claim_texts:
            assert claim in out


def test_list_numbers_writes_the_tidy_csv(tmp_path, capsys):
    path = tmp_path / "numbers.csv"
    assert main(["list", "--numbers", str(path)]) == 0
    written = pd.read_csv(path)
    assert list(written.columns) == ["artifact", "row", "column", "metric", "value", "std", "note"]
    assert len(written) == len(paper_numbers()) and "written to" in capsys.readouterr().out


def test_list_numbers_into_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["list", "--numbers", str(tmp_path / "no" / "such" / "numbers.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agent-lab: error: --numbers: cannot write") and "\n" not in err
