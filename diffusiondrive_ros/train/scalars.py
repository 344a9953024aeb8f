"""Scalar logging behind one interface: TensorBoard event files when tensorboard is installed, else a CSV file."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Protocol


class ScalarLogger(Protocol):
    def add_scalar(self, tag: str, value: float, step: int) -> None: ...

    def close(self) -> None: ...


class CsvScalarLogger:
    """Appends (tag, step, value) rows to ``scalars.csv``; the fallback when tensorboard is missing."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(log_dir) / "scalars.csv"
        new = not self.path.exists()
        self._file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(["tag", "step", "value"])

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._writer.writerow([tag, int(step), float(value)])

    def close(self) -> None:
        self._file.close()


class NullScalarLogger:
    """For ranks other than 0: logs nothing."""

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        pass

    def close(self) -> None:
        pass


def make_scalar_logger(log_dir: str | os.PathLike, enabled: bool = True) -> ScalarLogger:
    if not enabled:
        return NullScalarLogger()
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed
        return CsvScalarLogger(log_dir)
    return SummaryWriter(log_dir=str(log_dir))
