"""Shipped persona templates (data only: YAML files beside this one)."""
