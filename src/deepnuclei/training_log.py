"""What a training run writes for people, rewritten every epoch: `log.csv` (a row per epoch), `curves.png`
(losses and validation Dice) and `progress.PROGRESS_FILE`, which the `deepnuclei` Snakemake logger shows
while the job runs."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: no global figure state, no backend choice

from .io import write_atomic, write_json, write_text_atomic
from .progress import PROGRESS_FILE


class TrainingLog:
    """The epochs of the run of `model` in `out_dir` so far: `rows`, one per epoch (epoch, train_loss, val_loss,
    val_dice, lr, iterations, seconds; the validation's NaN in an epoch left unvalidated)."""

    def __init__(self, out_dir: Path, model: str, max_epochs: int) -> None:
        self.out_dir, self.model, self.max_epochs = out_dir, model, max_epochs
        self.rows: list[dict[str, float]] = []

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def write(self) -> None:
        """`log.csv` and `curves.png`."""
        table = self.table()
        write_text_atomic(self.out_dir / "log.csv", table.to_csv(index=False))
        figure = Figure(figsize=(10, 4))
        loss_axes, dice_axes = figure.subplots(1, 2)
        validated = table.dropna(subset=["val_loss"])  # `validate_every` leaves gaps
        loss_axes.plot(table.epoch, table.train_loss, label="training")
        loss_axes.plot(validated.epoch, validated.val_loss, label="validation")
        loss_axes.set(xlabel="epoch", ylabel="loss", yscale="log", title=f"{self.model}: loss")
        loss_axes.legend()
        dice_axes.plot(validated.epoch, validated.val_dice, color="tab:green")
        dice_axes.set(xlabel="epoch", ylabel="mean Dice", ylim=(0, 1), title="validation Dice")
        figure.tight_layout()
        write_atomic(self.out_dir / "curves.png", partial(figure.savefig, dpi=100))

    def seconds_left(self) -> float:
        """The time the remaining epochs take at the mean pace so far (at most: a plateau may stop sooner)."""
        return float(np.mean([row["seconds"] for row in self.rows])) * (self.max_epochs - len(self.rows))

    def write_progress(self) -> None:
        write_json(self.out_dir / PROGRESS_FILE, {"model": self.model, "epoch": len(self.rows),
                                                  "max_epochs": self.max_epochs, "seconds_left": self.seconds_left()})
