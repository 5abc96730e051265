"""The numbers the AGENT paper prints in its Tables 1-8, as data to show beside this library's results.

``paper_numbers.csv`` (next to this module) holds one printed number per line, in table order:

- ``artifact``: ``table1`` ... ``table8``.
- ``row``: the method or setting the table's row (or method column) names, e.g. ``BSR-Net``,
  ``A-BSR-Net (ours)``, ``Fix c``, ``No gamma``, ``MVR``, ``AGENT+MVR``, ``RigL``, ``SET``,
  ``Reduce LR``, ``AGENT (ours)``.  Tables 1 and 5 call AGENT on BSR-Net "Ours"; both use
  ``A-BSR-Net (ours)`` (Table 5's "Ours" cells repeat Table 1's).
- ``column``: the rest of the cell's coordinates, in the table's order, joined with `` | ``:
  ``AT | 90% | epoch 20`` (Tables 1, 5: setup ``AT``/``TRADES``/``standard``, sparsity, epoch),
  ``90% | VGG-16`` (Tables 3, 6), ``epoch 20`` (Table 4), ``95%`` (Table 7, sparsity),
  ``VGG-C | epoch 20`` (Table 8).  What a whole table shares (model, dataset) is in its caption.
- ``metric``: ``clean_acc`` / ``robust_acc`` (a "clean/robust" cell gives two lines), ``acc`` when
  the table prints one accuracy, ``grad_corr`` (Table 7); accuracies in percent as printed.
- ``value``: the number as printed; ``std``: the parenthesised number printed after it, else empty.
- ``note``: empty, or what a reader of that cell must know (e.g. a position the extraction lost).

Only numbers present in the paper's text extraction are recorded; nothing is filled in.  ``MISSING``
says, per table, what the extraction lost or the paper does not print.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PAPER_NUMBERS_FILE = Path(__file__).with_name("paper_numbers.csv")
TABLES = tuple(f"table{i}" for i in range(1, 9))  # the artifacts that print numbers
COLUMNS = ("artifact", "row", "column", "metric", "value", "std", "note")

MISSING: dict[str, str] = {
    "table1": "Nothing lost; the paper does not say what the parenthesised number after each clean "
              "accuracy is (recorded as std), prints no spread for robust accuracy, and prints robust "
              "0.0 for standard training although its text says only clean accuracy is presented.",
    "table2": "Most cells lost: the dense column, the RigL/A-RigL sub-column labels and the 90%/99% "
              "cells; only two values per dataset survive (95.0, 94.2 on CIFAR-10; 72.1, 71.6 on "
              "CIFAR-100), recorded with row 'unplaced' because their method and sparsity cannot be read.",
    "table3": "Nothing lost; the single accuracy per cell is not named clean or robust (the BSR-Net "
              "values equal Table 6's clean accuracies), so it is recorded as 'acc'.",
    "table4": "Nothing lost; no spread is printed, and the setting (99% sparse SET-ITOP VGG-C) is "
              "given only in the text, not the caption.",
    "table5": "Nothing lost; no spread is printed, and standard training prints robust 0.0 as in Table 1.",
    "table6": "The HYDRA and Ours (A-BSR-Net) columns are lost (8 clean/robust pairs); only the "
              "BSR-Net column survives, with the VGG-16 and WRN-28-4 cells merged in printed order.",
    "table7": "The caption lists 99% sparsity but no 99% column is printed (only 0-95%), and no "
              "spread over the three replicates is printed.",
    "table8": "Nothing lost; no spread is printed, and neither caption nor text states the dataset "
              "or sparsity of these SET-ITOP runs.",
}


def paper_numbers(artifact: str | None = None) -> pd.DataFrame:
    """All the paper's table numbers, or those of one ``artifact`` (``"table1"`` ... ``"table8"``)."""
    if artifact is not None and artifact not in TABLES:
        raise ValueError(f"unknown artifact {artifact!r}; valid ones: {', '.join(TABLES)}")
    frame = pd.read_csv(PAPER_NUMBERS_FILE, dtype={"row": str, "column": str, "note": str},
                        keep_default_na=False, na_values={"std": [""]})
    frame["value"] = frame["value"].astype(float)
    frame["std"] = frame["std"].astype(float)
    if artifact is not None:
        frame = frame[frame["artifact"] == artifact].reset_index(drop=True)
    return frame
