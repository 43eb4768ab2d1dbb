"""Personas: the model of a persona file, its loading and validation, the library, the scaffold."""
