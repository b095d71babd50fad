"""The training job: data, task, models, build, loop, and what a run leaves behind. May import
`sweep.lr`, `sweep.logs` and the shared bottom (`errors`, `plain`, `trial`, `resolvers`)."""
