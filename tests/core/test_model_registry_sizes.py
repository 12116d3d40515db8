"""gpt-image-2's total-pixel range (with the nearest valid size) and generic size limits."""

from __future__ import annotations

import pytest

from cometnb._core import model_registry


@pytest.mark.parametrize(
    ("size", "nearest"),
    [((512, 512), "816x816"), ((800, 800), "816x816"), ((800, 600), "960x720")],
)
def test_too_small_names_the_range_and_a_valid_nearest_size(
    size: tuple[int, int], nearest: str
) -> None:
    problem = model_registry.pixel_problem(*size)
    assert problem is not None
    assert "655,360 to 8,294,400" in problem and f"nearest valid size: {nearest}" in problem
    w, h = (int(s) for s in nearest.split("x"))
    assert model_registry.pixel_problem(w, h) is None and w % 16 == 0 and h % 16 == 0


@pytest.mark.parametrize(
    "size", [(1024, 1024), (1536, 1024), (3840, 2160), (1024, 1536), (816, 816)]
)
def test_sizes_in_range_pass(size: tuple[int, int]) -> None:
    assert model_registry.pixel_problem(*size) is None


@pytest.mark.parametrize(
    "size", [(64, 64), (100, 3000), (5000, 5000), (4000, 4000), (4096, 4096), (1, 9999)]
)
def test_nearest_size_always_follows_every_rule(size: tuple[int, int]) -> None:
    w, h = (int(s) for s in model_registry.nearest_flexible_size(*size).split("x"))
    assert w % 16 == 0 and h % 16 == 0
    assert max(w, h) <= 3 * min(w, h) and max(w, h) <= 3840
    assert 655_360 <= w * h <= 8_294_400


def test_nearest_size_keeps_the_orientation() -> None:
    w, h = (int(s) for s in model_registry.nearest_flexible_size(600, 1200).split("x"))
    assert h > w


def test_generic_limit_refuses_absurd_sizes_only() -> None:
    assert model_registry.generic_size_problem(4096, 4096) is None
    assert model_registry.generic_size_problem(8192, 1024) is None
    problem = model_registry.generic_size_problem(99999, 99999)
    assert problem is not None and "8,192 px" in problem and "99999x99999" in problem
