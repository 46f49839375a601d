"""What every part of the pipeline shares: user-facing errors, output-file checks and
writers, confidence intervals, and the quiet TensorFlow import."""
