"""What the loggers receive, and when.

Scalars at every check (the members' mean to the run's loggers, each member's own to its
``seed_<s>`` logger); histograms and pictures at the start (step 0), at the checks each logger's
schedule names (the last check's left to the end), and at the end what a check at the same step (an
early stop's) did not already log. The test split is pictured at the end only; the graph and the
hyper-parameters once, at the end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from src.run_log import log
from src.training.checkpoint import write_durably
from src.training.logger import Logger
from src.training.seeds import per_member, summarize
from src.visuals import Visual

if TYPE_CHECKING:
    from src.training.trainer import Trainer


class Reporter:
    def __init__(self, trainer: Trainer, loggers: list[Logger]) -> None:
        self.trainer, self.loggers = trainer, loggers
        self.member_loggers = [
            [logger.member(f"seed_{seed}") for logger in loggers] for seed in trainer.seeds
        ] if trainer.members > 1 else []
        self.histograms_at, self.pictured = -1, {}  # the step of the latest histograms, and of each picture tag

    def model_summary(self, summary: str) -> None:
        """The model's layers: in the run log, in model.md and in TensorBoard's text tab."""
        if self.trainer.rank != 0:
            return
        log.info(summary)
        write_durably(summary + "\n", self.trainer.run_dir / "model.md")
        for logger in self.loggers:
            logger.log_visuals({"run/model": summary}, self.trainer.state.step)

    def start(self, lr: float) -> None:
        """Step 0: the untrained model's metrics, histograms and pictures, so that every curve has its start."""
        if not self.loggers:
            return
        trainer = self.trainer
        members = per_member(trainer.evaluate(trainer.evaluated_splits))
        for metrics in members:
            metrics |= {"train/lr": lr, "epoch": 0}
        self.log(summarize(members, trainer.seeds), members, "start")

    def log(self, metrics: dict[str, Any], members: list[dict[str, float]], moment: str) -> None:
        """``moment``: start, check or end."""
        step = self.trainer.state.step
        means = {k: v for k, v in metrics.items() if not isinstance(v, dict) and not k.endswith(("/std", "/min", "/max"))}
        for loggers, scalars in zip(self.member_loggers, members):
            for logger in loggers:
                logger.log_scalars(scalars, step)
        visuals, histograms_logged = None, False
        for logger in self.loggers:
            logger.log_scalars(means, step)
            if self._due(logger.histogram_every_n_checks, moment) and self.histograms_at != step:
                logger.log_histograms(self.trainer.task.model, step)
                histograms_logged = True
            if self._due(logger.figures_every_n_checks, moment):
                if visuals is None:
                    visuals = {tag: v for tag, v in self._visuals(with_test=moment == "end").items() if self.pictured.get(tag) != step}
                logger.log_visuals(visuals, step)
        if histograms_logged:
            self.histograms_at = step
        self.pictured.update(dict.fromkeys(visuals or (), step))

    def end(self, metrics: dict[str, Any], members: list[dict[str, float]], config: dict[str, Any]) -> None:
        """The test metrics and pictures, the model's graph, the hyper-parameters with the final metrics."""
        tested = [{k: v for k, v in member.items() if k.startswith("test/")} for member in members]
        self.log({k: v for k, v in metrics.items() if k.startswith("test/")}, tested, "end")
        view, data = self.trainer.view, self.trainer.data
        for logger in self.loggers:
            logger.log_graph(view.graph_module(), view.example_input(data.pictured_splits(1)["train"]))
            logger.log_hparams(config, {k: v for k, v in metrics.items() if "/" in k})

    def close(self) -> None:
        for logger in self.loggers + [logger for loggers in self.member_loggers for logger in loggers]:
            logger.close()

    def _visuals(self, with_test: bool) -> dict[str, Visual]:
        task, splits = self.trainer.task, self.trainer.data.pictured_splits()
        training = task.training
        visuals = self.trainer.view.eval().visualize({name: split for name, split in splits.items() if with_test or name != "test"})
        task.train(training)
        return visuals

    def _due(self, every: int | None, moment: str) -> bool:
        """At the start and the end (unless ``every`` is 0: never), and at every ``every``-th check but the
        one at the run's planned last step, whose pictures and histograms the end logs (with the test split's)."""
        if every == 0 or moment != "check":
            return every != 0
        state = self.trainer.state
        return bool(every) and (state.epoch // self.trainer.check_every) % every == 0 and state.step < self.trainer.total_steps
