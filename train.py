"""Train one model with per-group learning-rate schedules; returns the objective for sweepers.

python train.py optimizer=adamw schedule=cosine optimizer.lr=3e-4 groups.head_lr_mult=10
python train.py -m search=lr
"""

import os
import sys

from sweep.train.process import end_of_program, pause_gc

pause_gc()  # until the first job is built (sweep/train/process.py)

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

CONF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conf")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from sweep.app.run import run

    return run(cfg)


if __name__ == "__main__":
    from sweep.app.command_line import check_command_line

    check_command_line(sys.argv[1:], CONF_DIR)  # unknown options and keys: one line, exit 2
    main()
    end_of_program()  # finished: skip the interpreter's second-long teardown of torch (sweep/train/process.py)
