"""Client: HTTP requests, retries, streaming, pacing and the concurrent grid runner.
Imports storage and core."""
