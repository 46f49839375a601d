"""What people look at after a run: tables and plots of training and evaluation."""
