"""Configs of published tables: the authors' settings and figures, one file per table."""
