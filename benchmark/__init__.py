"""medaugbench: a harness that compares synthetic-data and classic augmentation under equal budgets."""

__version__ = "0.1.0"
