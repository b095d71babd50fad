"""What is learned: the loss the loop minimises and the metrics it reports each epoch.

- classification: cross-entropy (`task.label_smoothing`); `val/loss` and `val/acc`.
- regression: mean squared error on the target standardised with the TRAINING set's mean and
  standard deviation, so a price in dollars trains with the same learning rates as one in
  millions; `val/loss` (that MSE) and `val/rmse`, in the target's own units.

`task.loss._target_` replaces the loss (any `loss(output, target) -> scalar tensor`, e.g.
`torch.nn.SmoothL1Loss`); it sees the same targets the built-in loss would (standardised for
regression). The model's output may be a tensor, a tuple or list (its first element is used) or
an object with `.logits` (transformers' model outputs).

The objective's direction follows the metric's name (`sweep.resolvers.direction_of`): `*acc` is maximised,
`*loss` and `*rmse` minimised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sweep.errors import check
from sweep.resolvers import direction_of  # noqa: F401 - re-exported: the objective's direction

CLASSIFICATION, REGRESSION = "classification", "regression"
TASKS = (CLASSIFICATION, REGRESSION)
METRICS = {CLASSIFICATION: ("val/acc", "val/loss", "train/loss"), REGRESSION: ("val/rmse", "val/loss", "train/loss")}


def output_of(output: Any) -> torch.Tensor:
    """The prediction tensor in a model's output: the tensor, a tuple's first element, or `.logits`."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output:
        return output_of(output[0])
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, Mapping) and "logits" in output:
        return output["logits"]
    raise TypeError(
        f"the model returned a {type(output).__name__}; expected a tensor, a tuple whose first "
        "element is one, or an object with .logits"
    )


def call_model(model: nn.Module, inputs: Any) -> Any:
    """model(x) for a tensor, model(**x) for a dict (transformers' convention), model(*x) for a tuple."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def validate(cfg: Mapping[str, Any]) -> None:
    name = cfg.get("name")
    check(name in TASKS, "task", name, f"one of {', '.join(TASKS)}")
    smoothing = cfg.get("label_smoothing", 0.0)
    check(
        isinstance(smoothing, (int, float)) and 0 <= smoothing < 1,
        "task.label_smoothing",
        smoothing,
        "a number in [0, 1)",
    )
    loss = cfg.get("loss")
    check(
        loss is None or (isinstance(loss, Mapping) and bool(loss.get("_target_"))),
        "task.loss",
        loss,
        "null (the task's own loss) or a node with _target_, e.g. task.loss._target_=torch.nn.SmoothL1Loss",
    )


@dataclass
class Task:
    """The loss and metrics of one run. For regression, `mean` and `std` are the training
    target's statistics (the loss sees `(y - mean) / std`; the RMSE is reported in y's units)."""

    name: str = CLASSIFICATION
    label_smoothing: float = 0.0
    custom_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    mean: float = 0.0
    std: float = 1.0
    metrics: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = METRICS[self.name]

    @property
    def regression(self) -> bool:
        return self.name == REGRESSION

    def prediction(self, output: Any, target: torch.Tensor) -> torch.Tensor:
        """The model's prediction, shaped as the task needs it ((n,) for a scalar regression target)."""
        pred = output_of(output)
        if self.regression and pred.shape != target.shape and pred.numel() == target.numel():
            pred = pred.reshape(target.shape)
        return pred

    def loss(self, output: Any, target: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch (a scalar tensor, left on the device)."""
        pred = self.prediction(output, target)
        if self.regression:
            target = (target.to(pred.dtype) - self.mean) / self.std
            pred = pred.float()
            return self.custom_loss(pred, target) if self.custom_loss else nn.functional.mse_loss(pred, target.float())
        if self.custom_loss:
            return self.custom_loss(pred, target)
        return nn.functional.cross_entropy(pred.float(), target, label_smoothing=self.label_smoothing)

    def val_sums(self, output: Any, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """A batch's loss sum and score sum (correct answers, or squared error in the target's units)."""
        pred = self.prediction(output, target)
        loss = self.loss(pred, target).float() * target.shape[0]
        if self.regression:
            return {"loss": loss, "score": ((pred.float() * self.std + self.mean - target.float()) ** 2).sum()}
        return {"loss": loss, "score": (pred.argmax(-1) == target).sum()}

    @torch.no_grad()
    def val_totals(self, model: nn.Module, batches: Iterable[Any], autocast: Callable[[], Any]) -> torch.Tensor:
        """[loss sum, score sum, sample count] over `batches`, one float64 tensor on the model's
        device (zeros for no batch): what several processes add up before `val_metrics`."""
        model.eval()
        loss_sum = score = None
        count = 0
        for inputs, target in batches:
            with autocast():
                output = call_model(model, inputs)
            sums = self.val_sums(output, target)
            loss_sum = sums["loss"] if loss_sum is None else loss_sum + sums["loss"]
            score = sums["score"] if score is None else score + sums["score"]
            count += target.shape[0]
        model.train()
        if loss_sum is None:
            return torch.zeros(3, dtype=torch.float64, device=next(model.parameters()).device)
        n = torch.tensor(float(count), dtype=torch.float64, device=loss_sum.device)
        return torch.stack([loss_sum.float().double(), score.float().double(), n])  # type: ignore[union-attr]

    def evaluate(self, model: nn.Module, batches: Iterable[Any], autocast: Callable[[], Any]) -> dict[str, float]:
        """`val/loss` and `val/acc` or `val/rmse` over `batches`; one host sync, at the end."""
        loss_value, score_value, count = self.val_totals(model, batches, autocast).tolist()
        return self.val_metrics(loss_value, score_value, int(count)) if count else {}

    def val_metrics(self, loss_sum: float, score_sum: float, count: int) -> dict[str, float]:
        """The reported metrics from `val_sums` added over `count` samples: `val/loss`, and
        `val/acc` or `val/rmse` (also what batched trials report per member)."""
        if self.regression:
            return {"val/loss": loss_sum / count, "val/rmse": (score_sum / count) ** 0.5}
        return {"val/loss": loss_sum / count, "val/acc": score_sum / count}


def build_task(cfg: Mapping[str, Any] | None, train_targets: Callable[[], torch.Tensor] | None = None) -> Task:
    """The task `cfg` names; `train_targets()` gives the training targets (read for regression only)."""
    from hydra.utils import instantiate

    cfg = dict(cfg or {"name": CLASSIFICATION})
    validate(cfg)
    custom = None
    if cfg.get("loss"):
        from sweep.train.user_code import import_object  # a one-line error for a path that does not import

        import_object("task.loss._target_", cfg["loss"]["_target_"])
        custom = instantiate(cfg["loss"], _convert_="all")
    task = Task(cfg["name"], float(cfg.get("label_smoothing", 0.0)), custom)
    if task.regression and train_targets is not None and cfg.get("standardize_target", True):
        y = train_targets().double()
        task.mean, task.std = float(y.mean()), float(y.std()) if len(y) > 1 else 1.0
        if not task.std > 0:
            task.std = 1.0
    return task
