"""The sweeper's settings, `hydra.sweeper.*` (light: the plugin shim imports it at every start)."""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SweeperConf:
    """`hydra.sweeper.*` settings (the search/ configs set them; each can be overridden)."""

    _target_: str = "hydra_plugins.lr_sweep.lr_sweep_sweeper.LRSweeper"
    _recursive_: bool = False  # `_target_` values (sampler, pruner) reach the sweeper as data, built by it
    n_trials: int = 20  # finished (COMPLETE or PRUNED) trials in the study, in total
    n_jobs: int = 1  # jobs launched together per batch (a parallel Hydra launcher runs them at once)
    trials_per_job: int = 1  # trials trained together as one stacked model in one job
    workers: Any = 1  # worker processes on this study: an integer, or auto (one per visible GPU, 1 on CPU)
    worker_index: int = 0  # set for the processes `workers` starts (offsets the sampler's seed)
    keep_checkpoints: int | None = None  # only the best K trials keep checkpoint.pt (0: none); null: all
    direction: Any = "maximize"  # maximize | minimize, or a list of them (a multi-objective study)
    study_name: str | None = None  # default: the sweep dir's name
    storage: str | None = None  # journal file path or database URL; default <sweep dir>/study.journal
    sampler: Any = "tpe"  # tpe | random | grid | cmaes | qmc | gp, or {_target_: optuna.samplers.X, ...}
    sampler_options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    pruner: Any = "median"  # median | percentile | successive_halving | hyperband | none, or {_target_: ...}
    n_startup_trials: int = 5  # median/percentile: trials that finish before any pruning
    n_warmup_steps: int = 2  # median/percentile: epochs a trial always trains before it can be pruned
    pruner_options: dict[str, Any] = field(default_factory=dict)  # other pruner arguments
    widen_edges: int = 0  # times the base LR's range may grow by a decade at an edge that holds the best trial
    pause_trials: bool = False  # successive halving pauses a trial at a rung (resume state kept) instead of pruning it
    min_complete_trials: int = 0  # any pruner: no trial is pruned before this many trials completed (0: no floor)
    params: dict[str, Any] | None = field(
        default_factory=dict
    )  # key -> interval(...)/choice(...)/...; null drops a key
    fixed: dict[str, Any] | None = field(default_factory=dict)  # key -> value set in every trial and in the rerun line
    search_space: dict[str, Any] | None = (
        None  # the Optuna plugin's older form: key -> {type, low, high, log, step, choices}
    )
    custom_search_space: str | None = None  # the Optuna plugin's module.function(job config, trial), suggests more keys
    max_failure_rate: float | None = (
        None  # stop with an error once more than this fraction of a batch failed; null: off
    )
    lr_bounds: str | None = None  # search optimizer.lr in a measured interval, once per study: lr_find (the LR
    # range test) or a hook module.function(job config, sweep dir) -> (low, high)
    config_check: str | None = None  # module.function(job config) raising on bad settings, before any trial
    space_hook: str | None = None  # module.function(trial, cfg) -> overrides (conditional spaces)
    enqueue_current: bool = False  # first trial = the config's current values of the searched keys
    # partial param dicts, each enqueued once when the study is new (keys left out are sampled), e.g.
    # [{groups.head_lr_mult: 1.0}]: the presets' one-LR baseline, so the report can compare with it
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    max_consecutive_failures: int = 5
    allow_changed_settings: bool = False  # resume a study whose fixed settings differ (recorded in the study)
    heartbeat_s: float = 10.0  # how often a worker marks its running trials alive
    stale_after_s: float = 120.0  # a running trial of another host with no heartbeat for this long is dead
    wait: bool = True  # workers as SLURM/submitit jobs: wait for them (a line per trial), or return once queued
    journal_on_shared_fs: bool = False  # allow a journal file for SLURM workers that may run on several hosts
    plots: bool = True  # draw history/importance/LR plots after the sweep, in a background process
