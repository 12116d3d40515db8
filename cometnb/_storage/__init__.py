"""Storage: the history folder (records, the SQLite index, image files) and its exports.
Imports only the core; the client used by ``rerun`` is injected (``_core.protocols.Runner``)."""
