"""The LR tools: the schedule preview and the LR range test. May import `sweep.train`, `sweep.lr`,
`sweep.logs` and the shared bottom."""
