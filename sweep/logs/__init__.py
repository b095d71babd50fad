"""What runs write: TensorBoard event files (scalars, HPARAMS) read and written without TensorFlow.
Imports nothing of sweep's; no torch."""
