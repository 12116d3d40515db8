"""Edit inputs are looked at before a byte is read (issue 21, point 2).

A 1.2 GB sparse file, ``/dev/zero`` and a FIFO given as ``--image`` were read whole (a raw
``MemoryError`` at 3.7 GB) or hung forever. Now a file is ``stat``-ed first: anything that is
not a regular file, or is over the model's limit, is refused with one short message before it
is opened, and a file is read with a cap. Nothing is sent.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from cometnb._client.client import Client
from cometnb._core.edit_inputs import MAX_INPUT_BYTES, resolve_source
from cometnb._core.errors import ValidationError
from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(30)

GB = 1 << 30


def _refused(client: Client, image: Any, model: str = "gpt-image-1") -> ValidationError:
    with pytest.raises(ValidationError) as info:
        client.edit("make it night", image, model=model)
    assert info.value.field == "image"
    assert len(str(info.value)) < 300
    return info.value


def test_sparse_file_of_1_2_gb_is_refused_unread(
    client: Client, sim: SimServer, tmp_path: Path
) -> None:
    sparse = tmp_path / "huge.png"
    with sparse.open("wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(int(1.2 * GB))  # no blocks on disk: only a read would cost memory
    error = _refused(client, str(sparse))
    assert "1228.8 MB" in error.message
    assert "not read" in error.message and "50.0 MB" in error.message
    assert sim.request_count == 0


def test_dev_zero_is_refused_as_a_device(client: Client, sim: SimServer) -> None:
    error = _refused(client, "/dev/zero")
    assert "device" in error.message and "regular file" in error.message
    assert sim.request_count == 0


def test_fifo_is_refused_without_opening_it(client: Client, sim: SimServer, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            client.edit("make it night", str(fifo), model="gpt-image-1")
        except BaseException as exc:  # collected for the main thread
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # it hung on the open: unblock it, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("opening a FIFO as an edit input hung")
    assert outcome and isinstance(outcome[0], ValidationError)
    assert "named pipe" in str(outcome[0])
    assert sim.request_count == 0


def test_folder_is_refused(client: Client, tmp_path: Path) -> None:
    assert "folder" in _refused(client, str(tmp_path)).message


def test_file_over_the_models_limit_is_refused_unread(
    client: Client, sim: SimServer, tmp_path: Path
) -> None:
    # dall-e-2 takes PNGs under 4 MB: a 6 MB file is refused by its size alone.
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(6 << 20)
    error = _refused(client, str(big), model="dall-e-2")
    assert "4.0 MB" in error.message and "not read" in error.message
    assert sim.request_count == 0


def test_a_file_is_read_with_a_cap(tmp_path: Path) -> None:
    from PIL import Image

    ok = tmp_path / "fine.png"
    Image.new("RGBA", (32, 32), (1, 2, 3, 255)).save(ok)
    found = resolve_source(str(ok))
    assert found.width == 32 and found.size_bytes == ok.stat().st_size
    with pytest.raises(ValidationError, match="under 100 B"):
        resolve_source(str(ok), max_bytes=100)
    assert MAX_INPUT_BYTES == 50 << 20
