"""Calculator presets, calculator factory and runners (relax, static, NEB) with checkpoints."""
