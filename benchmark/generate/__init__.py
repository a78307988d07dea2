"""Stage 3, generation: the GenerativeModel interface, the one generator training loop, synthesis
policies (what to sample, per class) and safetensors checkpoints with their cards."""
