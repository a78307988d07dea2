"""medaugbench test suite (a regular package, so `tests.conftest` is ours and not another distribution's `tests`)."""
