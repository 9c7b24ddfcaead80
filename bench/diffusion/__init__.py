"""The DifFIQA diffusion model: UNet, noise schedule, degradations, training and checkpoints."""
