"""Shipped grid presets (TOML files read by `benchmark.grid.config.load_preset`)."""
