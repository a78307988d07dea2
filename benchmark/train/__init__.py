"""Stage 2, training: the classifier config and budget, the one training loop every strategy goes through,
the Strategy interface, classification metrics, FLOP counting, devices and the run record."""
