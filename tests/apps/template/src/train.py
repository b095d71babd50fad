"""An app shaped like the lightning-hydra-template (src/train.py, configs/): a LightningModule whose
optimizer is a `_partial_` under `model.optimizer`, `trainer.max_epochs`, `optimized_metric`, a
`hydra:` node interpolating `paths` and `task_name`, and a search config written for the Hydra
Optuna plugin (configs/hparams_search/digits_optuna.yaml) whose one changed line is
`override /hydra/sweeper: lr_sweep`. The data: random tensors (CPU, seconds)."""

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch import nn

import sweep.lightning


class DenseNet(nn.Module):
    """The template's SimpleDenseNet: one wrapping container."""

    def __init__(self, n_in: int = 16, hidden: int = 32, n_out: int = 3) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Classifier(L.LightningModule):
    def __init__(self, net: nn.Module, optimizer) -> None:
        super().__init__()
        self.net, self.optimizer = net, optimizer

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val/acc", (self.net(x).argmax(1) == y).float().mean(), prog_bar=False)

    def configure_optimizers(self):
        return self.optimizer(params=self.parameters())


def loaders(batch_size: int):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    train = torch.utils.data.TensorDataset(x[:192], y[:192])
    val = torch.utils.data.TensorDataset(x[192:], y[192:])
    return (
        torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, generator=g),
        torch.utils.data.DataLoader(val, batch_size=64),
    )


@hydra.main(version_base="1.3", config_path="../configs", config_name="train.yaml")
def main(cfg: DictConfig) -> float:
    L.seed_everything(cfg.seed, verbose=False)
    model = Classifier(hydra.utils.instantiate(cfg.model.net), hydra.utils.instantiate(cfg.model.optimizer))
    callback = sweep.lightning.LRSweepCallback(cfg, monitor=cfg.optimized_metric)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[callback])
    train, val = loaders(cfg.data.batch_size)
    trainer.fit(model, train, val)
    value = float(trainer.callback_metrics[cfg.optimized_metric])
    out = HydraConfig.get().runtime.output_dir
    OmegaConf.save({"value": value, "epochs": trainer.current_epoch}, f"{out}/result.yaml")
    return value


if __name__ == "__main__":
    main()
