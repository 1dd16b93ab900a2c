"""Training logs: CSV files and a PNG training curve in the output folder, written atomically."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sgpt.utils.io import atomic_write_text


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


class RunLog:
    """Rows of training loss and dev scores, kept in memory and rewritten to disk as a whole.

    Files under ``folder``: ``train_log.csv`` (step, loss, lr, seconds), ``eval_log.csv``
    (step + metrics), ``training_curve.png`` (loss and dev score against step).
    """

    def __init__(self, folder: str | Path, metric: str = "spearman_cosine") -> None:
        self.folder = Path(folder)
        self.metric = metric
        self.train: list[dict] = []
        self.eval: list[dict] = []

    def write(self) -> None:
        """Write the CSV files and the plot (each file atomically)."""
        if self.train:
            atomic_write_text(self.folder / "train_log.csv", _csv_text(self.train))
        if self.eval:
            atomic_write_text(self.folder / "eval_log.csv", _csv_text(self.eval))
        if self.train:
            self._plot()

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([r["step"] for r in self.train], [r["loss"] for r in self.train], color="tab:blue", lw=1)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("MNRL loss", color="tab:blue")
        points = [(r["step"], r[self.metric]) for r in self.eval if self.metric in r]
        if points:
            ax2 = ax.twinx()
            ax2.plot(*zip(*points, strict=False), "o-", color="tab:red")
            ax2.set_ylabel(f"dev {self.metric}", color="tab:red")
        fig.tight_layout()
        tmp = self.folder / ".training_curve.tmp.png"
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        tmp.replace(self.folder / "training_curve.png")
