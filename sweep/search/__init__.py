"""The sweeper: space grammar, samplers and pruners, the ask/tell loop, runners, workers, storage,
results, status, plots and the LR report. Knows nothing about models and never imports torch: it
may import `sweep.logs`, the shared bottom, and from `sweep.train` only `resume` (the name of a
trial's resume file and the stop-request flag, no torch at import); the range test reaches it as a
hook named by a string.

Where things are: `sweeper` (the ask/tell loop), `plan` (the set-up checks and what they build),
`study` (opening the study, LR bounds), `recording` (telling the study how a trial ended),
`runners` (running jobs), `keys` (every study and trial attribute key), `workers` (heartbeats, dead
workers, surplus trials), `interruptions` (resuming stopped trials), `processes` and `cluster`
(starting worker processes, locally or as SLURM jobs), `checkpoints` (keep_checkpoints), `handoff`
(the trial a job gets), `space`, `space_hooks`, `optuna_forms`, `declaration` (the search space and
the app's keys), `edges` and `pruning` (search defaults), `storage`, `results`, `rerun`, `status`,
`plots`, `report*`.
"""
