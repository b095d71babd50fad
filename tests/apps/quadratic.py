"""A user's own Hydra app with its own "training loop", swept by lr-sweep's sweeper in tests.

It reports a value per step through `sweep.current_trial`, may be told to fail, diverge or stop
early, and returns its objective, as any Hydra app would.
"""

import math
import os
import time

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="quadratic")
def main(cfg: DictConfig) -> float:
    import sweep
    from sweep.trial import Outcome, Status, complete

    trial = sweep.current_trial(cfg)
    if cfg.probe_config:
        probe_config(cfg)
    x, y = float(cfg.x), float(cfg.y)
    if cfg.fail_above is not None and x > cfg.fail_above:
        raise ValueError(f"x={x} is too large for this app")
    if cfg.nan_below is not None and x < cfg.nan_below:
        return float("nan")
    value = (x - 1.0) ** 2 + (y + 2.0) ** 2
    for step in range(cfg.steps):
        time.sleep(cfg.sleep_s)
        trial.report(value * (cfg.steps - step), step)
        if step < cfg.steps - 1 and trial.should_prune():
            trial.finish(Outcome(Status.PRUNED, None, f"pruned after step {step + 1}/{cfg.steps}", step + 1))
            return math.nan
    if cfg.checkpoint:
        from hydra.core.hydra_config import HydraConfig

        out = HydraConfig.get().runtime.output_dir
        with open(os.path.join(out, "checkpoint.pt"), "w") as f:
            f.write(str(value))
    trial.finish(complete(value, cfg.steps))
    return value


def probe_config(cfg: DictConfig) -> None:
    """Write into the job dir whether the job's config is in struct mode (as Hydra hands it over)
    and whether it is this job's own (no mark from an earlier job), then leave a mark."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    try:
        cfg.new_key = 1
        struct = False
    except Exception:  # noqa: BLE001 - omegaconf's ConfigAttributeError in struct mode
        struct = True
    own = "marked_by_a_job" not in cfg
    with open_dict(cfg):
        cfg.marked_by_a_job = True
    with open(os.path.join(HydraConfig.get().runtime.output_dir, "probe.txt"), "w") as f:
        f.write(f"struct={struct} own={own}")


if __name__ == "__main__":
    main()
