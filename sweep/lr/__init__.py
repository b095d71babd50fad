"""The LR setup: schedules (pure functions of the update count), the torch LRScheduler users get,
layer groups, depths and the optimizer. Imports nothing of sweep's but `errors` and `plain`; no Hydra."""
