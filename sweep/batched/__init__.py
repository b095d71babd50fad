"""K trials trained as one stacked model (`hydra.sweeper.trials_per_job=K`). May import `sweep.train`,
`sweep.lr`, `sweep.logs` and the shared bottom."""
