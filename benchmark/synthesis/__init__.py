"""The synthesis stage: turn a registered generator into training data for one cell (plan, train or reuse the
models, select their checkpoints and guidance, sample, score what was sampled apart from generator compute)."""
