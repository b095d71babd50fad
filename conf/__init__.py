# Makes conf/ an importable package (shipped as sweep.conf), so other Hydra apps can compose
# these config groups through the pkg://sweep.conf search path (hydra_plugins/lr_sweep).
