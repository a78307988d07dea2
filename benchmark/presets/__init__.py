"""Shipped grid presets (TOML files read by `benchmark.grid_config.load_preset`)."""
