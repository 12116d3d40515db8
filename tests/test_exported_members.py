"""The public names of DESIGN.md §1 are a contract: each is exported, importable and documented."""

from __future__ import annotations

import inspect
import types

import cometnb

PUBLIC = {
    "Client",
    "AsyncClient",
    "ImageRequest",
    "Generation",
    "GeneratedImage",
    "Grid",
    "History",
    "Record",
    "history",
    "panel",
    "batch",
    "Batch",
    "mask",
    "CometError",
    "ValidationError",
    "AuthenticationError",
    "RateLimitError",
    "APIError",
    "ResponseError",
    "CancelledError",
    "load_ipython_extension",
    "unload_ipython_extension",
    "__version__",
    "BudgetError",
    "BatchBusyError",
    "ByteLimits",
    "ClientEvent",
    "SpendTable",
    "Cost",
    "PriceTable",
    "prices",
    "refresh_prices",
    "models",
    "ModelTable",
    "ModelInfo",
    "balance",
    "Balance",
}


def test_all_lists_exactly_the_public_names() -> None:
    assert set(cometnb.__all__) == PUBLIC
    assert cometnb.__all__ == sorted(cometnb.__all__)


def _public_members() -> set[str]:
    """What the package namespace really holds once every lazy name is resolved, less the
    public submodules (``cometnb.sim``, ``cometnb.magic``…) and typing-only imports."""
    for name in cometnb.__all__:
        getattr(cometnb, name)
    typing_only = {"annotations", "TYPE_CHECKING", "Any"}
    return {
        name
        for name, value in vars(cometnb).items()
        if not name.startswith("_")
        and name not in typing_only
        and not (
            isinstance(value, types.ModuleType)
            and value.__name__.startswith("cometnb.")
            and name not in cometnb.__all__
        )
    }


def test_all_is_what_the_package_exposes() -> None:
    """As httpx does: no public name is missing from ``__all__`` and none is extra."""
    assert _public_members() == set(cometnb.__all__) - {"__version__"}
    assert sorted(dir(cometnb)) == sorted(cometnb.__all__)


def test_every_exported_name_resolves_and_is_documented() -> None:
    for name in cometnb.__all__:
        value = getattr(cometnb, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        assert inspect.getdoc(value), f"cometnb.{name} has no docstring"


def test_error_taxonomy() -> None:
    assert issubclass(cometnb.ValidationError, cometnb.CometError)
    assert issubclass(cometnb.AuthenticationError, cometnb.APIError)
    assert issubclass(cometnb.RateLimitError, cometnb.APIError)
    assert issubclass(cometnb.APIError, cometnb.CometError)
    assert issubclass(cometnb.ResponseError, cometnb.CometError)


def test_client_methods_of_the_contract() -> None:
    for method in ("generate", "agenerate", "generate_many"):
        assert callable(getattr(cometnb.Client, method))
    assert inspect.iscoroutinefunction(cometnb.Client.agenerate)
    params = inspect.signature(cometnb.Client).parameters
    assert list(params)[:4] == ["api_key", "base_url", "timeout", "max_retries"]


def test_history_methods_of_the_contract() -> None:
    for method in ("find", "compare", "rerun", "to_dataframe", "export", "get"):
        assert callable(getattr(cometnb.History, method))


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        cometnb.does_not_exist  # noqa: B018
    except AttributeError as exc:
        assert "does_not_exist" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
