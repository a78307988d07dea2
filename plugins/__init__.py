"""Built-in medaugbench plugins, registered through the pluggy hooks in benchmark.hookspecs."""
