"""Stage 1, data: dataset types and loading, MedMNIST files and digests, low-data subsets, the task spec,
dataset cards, index sampling and image decoding/writing. Imports only the plugin system."""
