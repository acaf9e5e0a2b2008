"""The rows of a `likra curve` folder from the scores stored so far, without training or scoring anything.

`likra curve` writes curve.csv once every checkpoint is scored; a curve scored over several sessions (issue 17's
HellaSwag and Gemma-3-270M curves) is read here from its stored per-item scores, with the same columns (the same
`curve_rows`), and printed as a table of acc_norm (calibrated rows: acc_calibrated) by method and examples.

    .venv/bin/python results/curve_so_far.py CURVE_FOLDER [--csv OUT.csv]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from likra.experiments.curve import CSV_FIELDS, curve_rows
from likra.files import write_csv
from likra.report import _rows_table  # the report's own table of a curve's rows

METHODS = ("base", "sft", "sft_calibrated", "likra", "negbase")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--csv", help="write the rows here, as curve.csv has them")
    args = parser.parse_args()
    rows = curve_rows(Path(args.folder))
    if args.csv:
        write_csv(args.csv, rows, CSV_FIELDS)
    header, lines = _rows_table([r for r in rows if r["method"] in METHODS], "method")
    for line in [header, ["---"] * len(header), *lines]:
        print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    sys.exit(main())
