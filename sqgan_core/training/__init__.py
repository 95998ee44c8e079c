"""Training of the three SQ-GAN stages (semantic, image, fine-tune) and of the entropy priors."""
