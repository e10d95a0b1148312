"""Dataset generation and the npz cache every training job reads."""
