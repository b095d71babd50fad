"""A plain Hydra app (no Lightning, no lr-sweep config groups) whose `hydra:` node interpolates job
keys, swept by lr-sweep's `search=lr` preset: its `lr_sweep:` node says where the preset's keys sit."""

import math

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base="1.3", config_path="conf", config_name="app")
def main(cfg: DictConfig) -> float:
    value = -((math.log10(cfg.opt.lr) + 2) ** 2) - 0.01 * cfg.run.steps  # best near lr=1e-2
    OmegaConf.save({"value": value, "steps": cfg.run.steps}, f"{HydraConfig.get().runtime.output_dir}/result.yaml")
    return value


if __name__ == "__main__":
    main()
