"""Generate into a history and die with SIGKILL at a chosen point (for the repair tests).

argv: base_url, history folder, point, count. ``point`` is where the process kills itself:
``before-document`` (the images are on disk, their record document is not), ``before-index``
(images and document written, the index row not committed), or ``mid-image`` (while an image
file is half written). ``count`` requests go through ``generate_many``; the kill happens on the
last one, so earlier ones are complete.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def main() -> None:
    base_url, folder, point, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    from cometnb._client.client import Client
    from cometnb._storage import files, index, repair
    from cometnb.history import History

    seen = {"n": 0}

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "before-document":
        original_doc = repair.write_document

        def write_document(root: Any, fields: Any) -> None:
            seen["n"] += 1
            if seen["n"] == count:
                die()
            original_doc(root, fields)

        repair.write_document = write_document  # type: ignore[assignment]
    elif point == "before-index":
        original_insert = index.Index.insert

        def insert(self: Any, *args: Any) -> Any:
            seen["n"] += 1
            if seen["n"] == count:
                die()
            return original_insert(self, *args)

        index.Index.insert = insert  # type: ignore[method-assign]
    elif point == "mid-image":
        original_write = files.atomic_write

        def atomic_write(path: Any, data: bytes, **kw: Any) -> None:
            if "images" in str(path) and not str(path).endswith(".json"):
                seen["n"] += 1
                if seen["n"] == count:
                    tmp = path.with_name(f".{path.name}.{os.getpid()}.abcdef{files.TEMP_SUFFIX}")
                    tmp.write_bytes(data[: len(data) // 2])
                    die()
            original_write(path, data, **kw)

        files.atomic_write = atomic_write  # type: ignore[assignment]
    with Client(
        api_key="sk-cometnb-test-7f3a9c2e51d04b86a1e0", base_url=base_url, history=History(folder)
    ) as client:
        requests = [
            {"prompt": f"harbour number {i}", "model": "gpt-image-1-mini"} for i in range(count)
        ]
        client.generate_many(requests, concurrency=1)
    print("not killed")


if __name__ == "__main__":
    main()
