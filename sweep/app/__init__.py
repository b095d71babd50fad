"""The Hydra edge: mode dispatch and exit codes for train.py, command-line checks before Hydra
composes, `python -m sweep ...`. May import every other layer."""
