"""agent_lab/paper/paper_numbers.csv: shape, ranges, and cells checked by eye against the paper text.

Line numbers in comments refer to /work/shared/paper/000_473d291ef5098bb2.txt (the paper's text extraction).
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

MODULE_FILE = Path(__file__).resolve().parents[1] / "agent_lab" / "paper" / "numbers.py"


def _load():
    # By file path: works whether or not agent_lab/paper/__init__.py exists.
    spec = importlib.util.spec_from_file_location("_paper_numbers_under_test", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


numbers = _load()
ALL = numbers.paper_numbers()
KEY = ["artifact", "row", "column", "metric"]


def cell(artifact, row, column, metric="acc"):
    hit = ALL[(ALL.artifact == artifact) & (ALL.row == row) & (ALL.column == column) & (ALL.metric == metric)]
    assert len(hit) == 1, (artifact, row, column, metric, len(hit))
    return hit.iloc[0]


def test_columns_and_file():
    assert numbers.PAPER_NUMBERS_FILE.name == "paper_numbers.csv" and numbers.PAPER_NUMBERS_FILE.is_file()
    raw = pd.read_csv(numbers.PAPER_NUMBERS_FILE, dtype=str, keep_default_na=False)
    assert list(raw.columns) == ["artifact", "row", "column", "metric", "value", "std", "note"]
    assert list(ALL.columns) == list(raw.columns)
    assert (raw.row != "").all() and (raw.column != "").all()


def test_every_table_present_or_explained():
    assert set(numbers.MISSING) <= set(numbers.TABLES)
    for artifact in numbers.TABLES:
        present = (ALL.artifact == artifact).any()
        assert present or len(numbers.MISSING.get(artifact, "")) > 20, artifact
    assert set(ALL.artifact) == set(numbers.TABLES)
    # Rows are in table order: artifacts appear in ascending blocks.
    order = [int(a.removeprefix("table")) for a in ALL.artifact]
    assert order == sorted(order)


def test_counts_per_table():
    counts = ALL.artifact.value_counts().to_dict()
    assert counts == {"table1": 144, "table2": 4, "table3": 8, "table4": 12, "table5": 216,
                      "table6": 8, "table7": 10, "table8": 20}


def test_ranges_keys_and_stds():
    assert set(ALL.metric) <= {"clean_acc", "robust_acc", "acc", "grad_corr"}
    acc = ALL[ALL.metric != "grad_corr"]
    assert acc.value.between(0, 100).all()
    corr = ALL[ALL.metric == "grad_corr"]
    assert set(corr.artifact) == {"table7"} and corr.value.between(-1, 1).all()
    assert not ALL.duplicated(KEY).any()
    assert (ALL["std"].dropna() >= 0).all()
    # Only the clean accuracies of Tables 1-3 print a parenthesised spread.
    assert set(ALL.dropna(subset=["std"]).artifact) == {"table1", "table2", "table3"}
    assert ALL[(ALL.artifact == "table1") & (ALL.metric == "robust_acc")]["std"].isna().all()


def test_selection_and_unknown_artifact():
    t7 = numbers.paper_numbers("table7")
    assert len(t7) == 10 and set(t7.artifact) == {"table7"} and list(t7.index) == list(range(10))
    with pytest.raises(ValueError, match="table1.*table8"):
        numbers.paper_numbers("table9")


@pytest.mark.parametrize("artifact,row,column,metric,value,std", [
    # Table 1, line 197: AT 20-th, 90% BSR-Net "55.0 (1.59)/ 38.2".
    ("table1", "BSR-Net", "AT | 90% | epoch 20", "clean_acc", 55.0, 1.59),
    ("table1", "BSR-Net", "AT | 90% | epoch 20", "robust_acc", 38.2, None),
    # Table 1, line 208: TRADES 200-th, 99% Ours "70.9 (0.25)/41.2".
    ("table1", "A-BSR-Net (ours)", "TRADES | 99% | epoch 200", "robust_acc", 41.2, None),
    ("table1", "A-BSR-Net (ours)", "TRADES | 99% | epoch 200", "clean_acc", 70.9, 0.25),
    # Table 1, line 210: Standard 40-th, 99% BSR-Net "62.6 (2.47)/0.0".
    ("table1", "BSR-Net", "standard | 99% | epoch 40", "clean_acc", 62.6, 2.47),
    # Table 2, lines 245-246: the only surviving values.
    ("table2", "unplaced", "cifar10 | printed value 1 of 2", "acc", 95.0, 0.21),
    ("table2", "unplaced", "cifar100 | printed value 2 of 2", "acc", 71.6, 0.26),
    # Table 3, lines 269 and 270.
    ("table3", "A-BSR-Net (ours)", "90% | WRN-28-4", "acc", 95.5, 0.23),
    ("table3", "BSR-Net", "99% | VGG-16", "acc", 86.4, 0.25),
    # Table 4, lines 286-287.
    ("table4", "MVR", "epoch 90", "acc", 71.2, None),
    ("table4", "AGENT+MVR", "epoch 200", "acc", 82.3, None),
    # Table 5, line 321 (AT 200-th, 90% No gamma "20.5/9.5") and line 323 (TRADES 40-th, 99% No gamma "21.5/10.0").
    ("table5", "No gamma", "AT | 90% | epoch 200", "robust_acc", 9.5, None),
    ("table5", "No gamma", "TRADES | 99% | epoch 40", "clean_acc", 21.5, None),
    # Table 5, line 331: standard 90-th, 90% Fixed c "89.8/0.0".
    ("table5", "Fix c", "standard | 90% | epoch 90", "clean_acc", 89.8, None),
    # Table 6, line 740 ("89.4/ 53.7 92.8/ 55.6") and 741 ("86.4/ 48.7 89.5/ 52.7").
    ("table6", "BSR-Net", "90% | WRN-28-4", "robust_acc", 55.6, None),
    ("table6", "BSR-Net", "99% | VGG-16", "robust_acc", 48.7, None),
    # Table 7, lines 765-766.
    ("table7", "RigL", "90%", "grad_corr", 0.1886, None),
    ("table7", "SET", "95%", "grad_corr", 0.1195, None),
    # Table 8, lines 805 and 806.
    ("table8", "AGENT (ours)", "VGG-C | epoch 130", "acc", 87.6, None),
    ("table8", "Reduce LR", "ResNet-34 | epoch 240", "acc", 89.8, None),
])
def test_spot_checks(artifact, row, column, metric, value, std):
    got = cell(artifact, row, column, metric)
    assert got.value == pytest.approx(value)
    assert (pd.isna(got["std"]) if std is None else got["std"] == pytest.approx(std))


def test_cross_table_consistency():
    t1, t5 = numbers.paper_numbers("table1"), numbers.paper_numbers("table5")
    ours1 = t1[t1.row == "A-BSR-Net (ours)"].set_index(["column", "metric"]).value
    ours5 = t5[t5.row == "A-BSR-Net (ours)"].set_index(["column", "metric"]).value
    assert len(ours1) == 72 and ours5.sort_index().equals(ours1.sort_index())
    t3, t6 = numbers.paper_numbers("table3"), numbers.paper_numbers("table6")
    bsr3 = t3[t3.row == "BSR-Net"].set_index("column").value
    bsr6 = t6[t6.metric == "clean_acc"].set_index("column").value
    assert bsr3.sort_index().equals(bsr6.sort_index())


def test_table1_matches_the_texts_claims():
    t1 = numbers.paper_numbers("table1")
    t1 = t1.assign(setting=t1.column.str.rsplit(" | ", n=1).str[0])
    wide = t1.pivot_table(index=["setting", "metric", "column"], columns="row", values="value")
    gain = wide["A-BSR-Net (ours)"] - wide["BSR-Net"]
    # Line 238: "for limited time periods like 20 epochs ... clean accuracy as high as 11.4%".
    at20 = gain[gain.index.get_level_values("column").str.endswith("epoch 20")]
    assert at20.xs("clean_acc", level="metric").max() == pytest.approx(11.4)
    # Line 238: "average accuracy improvement over the 6 time budgets ... by upto 5.0%".
    assert round(gain.groupby(level=["setting", "metric"]).mean().max(), 1) == 5.0


def test_module_needs_no_package_init():
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(name.startswith("agent_lab") for name in imported)
    assert all(n.level == 0 for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    if (MODULE_FILE.parent / "__init__.py").exists():  # once the lead's __init__ exists
        packaged = importlib.import_module("agent_lab.paper.numbers")
        assert packaged.paper_numbers().equals(ALL)
