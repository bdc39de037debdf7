"""The study: scoring runs and writing the report."""
