"""Tests of the Jupyter server extension (a package: its conftest must not shadow the root one)."""
