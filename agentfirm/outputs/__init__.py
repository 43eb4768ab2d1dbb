"""Output types: their JSON schemas and their Markdown views."""
