"""The command line: the typer app, its output layer, terminal prompts, and one module per command
group under ``commands/``."""
