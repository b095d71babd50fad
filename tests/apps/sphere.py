"""The Hydra Optuna plugin's example app (plugins/hydra_optuna_sweeper/example/sphere.py), as its
tests use it, swept here by lr-sweep's sweeper (`hydra/sweeper=lr_sweep` in conf/sphere.yaml)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="sphere")
def sphere(cfg: DictConfig) -> float:
    if cfg.get("error", False):
        raise RuntimeError("cfg.error is True")
    return float(cfg.x) ** 2 + float(cfg.y) ** 2


if __name__ == "__main__":
    sphere()
