"""The paper's experiments, composed from data, training, scoring and metrics; each one resumable."""
