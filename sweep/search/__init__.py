"""The sweeper: space grammar, samplers and pruners, the ask/tell loop, runners, workers, storage,
results, status and plots. Knows nothing about models and never imports torch: it may import
`sweep.logs` and the shared bottom only (the range test reaches it as a hook named by a string)."""
