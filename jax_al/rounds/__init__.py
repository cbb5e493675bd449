"""Human labeling rounds: pick a batch, export it for labeling, merge the labels back."""
