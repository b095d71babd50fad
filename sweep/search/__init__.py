"""The sweeper: space grammar, samplers and pruners, the ask/tell loop, runners, workers, storage,
results, status and plots. Knows nothing about models and never imports torch: it may import
`sweep.logs` and the shared bottom only (the range test reaches it as a hook named by a string).

Where things are: `sweeper` (the ask/tell loop), `plan` (the set-up checks and what they build),
`study` (opening the study, LR bounds), `runners` (running jobs), `keys` (every study and trial
attribute key), `workers` (heartbeats, dead workers, surplus trials), `processes` (starting worker
processes), `checkpoints` (keep_checkpoints), `handoff` (the trial a job gets), `space` and
`space_hooks` (the search space), `storage`, `results`, `status`, `plots`."""
