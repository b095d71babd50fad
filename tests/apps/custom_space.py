"""The Hydra Optuna plugin's custom search space example (example/custom-search-space-objective.py):
`custom_search_space` names `configure(cfg, trial)`, which suggests `z` from `x` and adds `+w`."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="custom_space")
def multi_dimensional_sphere(cfg: DictConfig) -> float:
    return float(cfg.w) ** 2 + float(cfg.x) ** 2 + float(cfg.y) ** 2 + float(cfg.z) ** 2


def configure(cfg: DictConfig, trial) -> None:
    x = trial.params["x"]
    trial.suggest_float("z", x - cfg.max_z_difference_from_x, x + cfg.max_z_difference_from_x)
    trial.suggest_float("+w", 0.0, 1.0)  # +w: a key the config does not have


if __name__ == "__main__":
    multi_dimensional_sphere()
