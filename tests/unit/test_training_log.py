"""The training log: a row per epoch in log.csv, the curves, and the progress the Snakemake logger shows."""

from __future__ import annotations

import json
import math

import pandas as pd

from deepnuclei.progress import PROGRESS_FILE, training_status
from deepnuclei.training_log import TrainingLog


def test_the_log_writes_its_rows_its_curves_and_the_time_left(tmp_path) -> None:
    log = TrainingLog(tmp_path, "linus", max_epochs=5)
    log.rows += [
        {"epoch": 1, "train_loss": 0.9, "val_loss": math.nan, "val_dice": math.nan, "lr": 1e-3, "iterations": 10,
         "seconds": 20.0},
        {"epoch": 2, "train_loss": 0.7, "val_loss": 0.8, "val_dice": 0.5, "lr": 1e-3, "iterations": 10, "seconds": 40.0},
    ]
    log.write()
    log.write_progress()
    table = pd.read_csv(tmp_path / "log.csv")
    assert list(table.columns) == list(log.rows[0]) and list(table.train_loss) == [0.9, 0.7]
    assert table.val_dice.isna().tolist() == [True, False]  # an epoch left unvalidated
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert log.seconds_left() == 3 * 30.0  # 3 epochs left at the mean 30 s
    progress = json.loads((tmp_path / PROGRESS_FILE).read_text())
    assert progress == {"model": "linus", "epoch": 2, "max_epochs": 5, "seconds_left": 90.0}
    assert training_status(tmp_path) == "linus epoch 2/5, ~2 min left"
