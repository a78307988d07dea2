"""medaugbench test suite (a regular package, so `tests.helpers` is ours and not another distribution's `tests`)."""
