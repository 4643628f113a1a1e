"""One progress bar per training stage: Lightning's TQDMProgressBar over optimizer steps.

The stock bar restarts every epoch, shows the logger's version number and opens a second bar
for every validation. This one counts optimizer steps out of ``max_steps`` (a resumed run starts
where it was), names the epoch in its text and validates without a bar. Built by
:func:`experiments.console.progress_bar` (``--verbose`` keeps the stock bars).
"""

from __future__ import annotations

import sys
from typing import Any

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm


class StageProgressBar(TQDMProgressBar):
    def on_train_start(self, trainer, pl_module) -> None:
        self.train_progress_bar = Tqdm(  # as Lightning's init_train_tqdm, over optimizer steps
            desc="train",
            total=trainer.max_steps if trainer.max_steps > 0 else None,
            initial=trainer.global_step,
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    def on_train_epoch_start(self, trainer, *_: Any) -> None:
        self.train_progress_bar.set_description(f"train (epoch {trainer.current_epoch})")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar = self.train_progress_bar
        step = trainer.global_step
        if step != bar.n and self._should_update(step, bar.total):
            bar.n = step
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self._train_progress_bar is not None:
            self._train_progress_bar.close()  # the bar ends before the traceback starts

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def get_metrics(self, trainer, pl_module) -> dict:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items
