"""Notebook front ends: the ``%%cometimg`` magic, its cell engine and views, and the panel.
Imports every layer below; only the public modules (``magic``, ``widget``) import it."""
