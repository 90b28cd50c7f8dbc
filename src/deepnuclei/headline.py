"""The screen a run ends on (`deepnuclei headline`, the last step of `make demo`): where the report is, and
the headline numbers read from the tables the run wrote. Each part is left out when its table is absent
(a dataset without labels has no Dice, a real one no QSM truth)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

NUCLEI7 = ("CN", "GP", "PUT", "THA", "SN", "RN", "DN")


def ours(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of our methods (the papers' rows are named 'paper: ...')."""
    return table[~table["method"].str.startswith("paper:")]


def headline(results_dir: str | Path, report: str | Path) -> str:
    results = Path(results_dir)
    lines = [(f"Report: {report} (open it in a browser); tables in {results / 'evaluation'}, "
              f"figures in {results / 'evaluation' / 'figures'}.")]
    if (path := results / "evaluation" / "dice_nuclei.csv").exists():
        table = ours(pd.read_csv(path))
        lines.append("Mean Dice over the 7 nuclei (CN GP PUT THA SN RN DN):")
        width = max(map(len, table["method"]), default=0)
        lines += [f"  {row.method:{width}s}  {row[list(NUCLEI7)].mean():.3f}   "
                  f"({' '.join(f'{row[n]:.2f}' for n in NUCLEI7)}; {row.subjects:.0f} test subjects, "
                  f"{row.misses:.0f} structures missed)" for _, row in table.iterrows()]
    tuned = {path.parent.name: init for path in sorted((results / "models").glob("*/summary.json"))
             if (init := json.loads(path.read_text()).get("init"))}
    if tuned:
        lines.append("Fine-tuned, not trained from scratch: " + ", ".join(
            f"{model} from {init}" for model, init in tuned.items()))
    if (path := results / "evaluation" / "stn_methods.csv").exists():
        table = ours(pd.read_csv(path))
        lines.append("STN Dice: " + ", ".join(f"{row.method} {row.dice:.3f}" for row in table.itertuples()))
    if (path := results / "measures" / "nuclei_wide.csv").exists():
        wide = pd.read_csv(path, dtype={"in_training_range": str, "session_id": str})
        outside = wide[wide["in_training_range"] == "False"]
        if len(outside):
            sessions = outside["participant_id"] + ("_" + outside["session_id"]).fillna("")
            lines.append(f"Outside their model's training range (check their labels; range_warnings in {path}): "
                         + ", ".join(f"{method} on {session}" for method, session in zip(outside["method"], sessions)))
    if (path := results / "qsm" / "qsm_metrics.csv").exists():
        means = pd.read_csv(path).groupby("method")[["nrmse_percent", "max_abs_error_ppb"]].mean()
        lines.append("QSM against the truth: " + ", ".join(
            f"{method} NRMSE {row.nrmse_percent:.1f} %, largest nucleus error {row.max_abs_error_ppb:.1f} ppb"
            for method, row in means.iterrows()))
    if (path := results / "registration" / "tre.csv").exists():
        means = pd.read_csv(path).groupby("method")["tre_mm"].mean()
        lines.append("T1 -> SWI registration error (TRE): " + ", ".join(
            f"{method} {value:.2f} mm" for method, value in means.items()))
    return "\n".join(lines)
