"""Stage 5, grids: grid config files and presets, expansion into cells with budgets, executors, the runner
and the results folder (records, failures, resumption)."""
