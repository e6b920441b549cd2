"""SOQL and SOSL: one query engine for every surface."""
