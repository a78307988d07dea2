"""Stage 4, evaluation of synthetic data: feature extractors, class-matched quality with real floors,
the memorisation audit, and loading image sets (folders, .npz, generator folders) to score."""
