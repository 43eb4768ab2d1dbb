"""The words every part shares: models, the task lifecycle, cost summaries."""
