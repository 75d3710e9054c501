"""The model's wing: fitting, the checkpoint files, inference, scoring and plots."""
