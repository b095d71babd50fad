"""The Hydra Optuna plugin's multi-objective example (example/multi-objective.py, Binh and Korn),
swept by lr-sweep's sweeper: `direction` is a list, the results a Pareto front."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="multi_objective")
def binh_and_korn(cfg: DictConfig) -> tuple[float, float]:
    x, y = float(cfg.x), float(cfg.y)
    return 4 * x**2 + 4 * y**2, (x - 5) ** 2 + (y - 5) ** 2


if __name__ == "__main__":
    binh_and_korn()
