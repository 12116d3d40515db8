"""Core: data types, the capability table, errors, settings, image helpers and the protocols
the layers above implement. Imports nothing from the rest of the package."""
