"""The panel and the models of December 2026 (issue 23): the ``complexity`` control exists only
where the model's registry row takes it (gpt-image-2.6, and ids that took its rules), its value
reaches the server and comes back with "load settings"; other models never send it."""

from __future__ import annotations

import pytest
from test_widget import generate, visible
from test_widget import live as live  # the fixture: the simulator and a session key
from test_widget import p as p  # the fixture: a panel against it

from cometnb._core.model_registry import MODELS, get_caps
from cometnb._notebook.panel_form import RequestForm
from cometnb.sim import SimServer
from cometnb.widget import Panel

pytestmark = pytest.mark.timeout(120)


def _takes_complexity(model: str) -> bool:
    caps = get_caps(model)
    return caps is not None and bool(caps.complexities)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_complexity_shows_only_where_the_row_takes_it(model: str) -> None:
    form = RequestForm()
    form.model.value = model
    shown = "complexity" in visible(form)
    assert shown == _takes_complexity(model)
    if shown:
        assert [v for _label, v in form.complexity.options] == ["", "low", "medium", "high"]


def test_an_assumed_later_id_gets_the_control_and_a_new_unknown_one_does_not() -> None:
    form = RequestForm()
    form.model.value = "gpt-image-2.7-flare"  # the family rule: 2.6's controls
    assert "complexity" in visible(form)
    form.model.value = "some-new-model"
    assert "complexity" not in visible(form)


def test_switching_away_from_26_drops_complexity_from_the_request(live: SimServer) -> None:
    form = RequestForm()
    form.prompt.value = "a poster"
    form.model.value = "gpt-image-2.6-flare"
    form.complexity.value = "low"
    assert form.values()["complexity"] == "low"
    assert "complexity=low" in form.summary()
    form.model.value = "gpt-image-2.5-flare"  # takes xhigh but not complexity
    assert "complexity" not in form.values()
    assert form.build_request().fields.get("complexity") is None
    form.model.value = "gpt-image-2.6-sunburst"  # back on 2.6: the API's default again
    assert "complexity" not in form.values()


def test_complexity_and_xhigh_reach_the_server_and_load_back(p: Panel, live: SimServer) -> None:
    generate(p, "a busy market map", model="gpt-image-2.6-flare", quality="xhigh", complexity="low")
    assert live.requests[-1]["complexity"] == "low" and live.requests[-1]["quality"] == "xhigh"
    gen = p.generations[-1]
    assert gen.ok
    p.form.model.value = "gpt-image-2"
    assert "complexity" not in visible(p.form)
    p.form.load(gen.request)
    assert (p.model.value, p.complexity.value, p.quality.value) == (
        "gpt-image-2.6-flare",
        "low",
        "xhigh",
    )


def test_no_complexity_on_a_model_without_it_is_sent(p: Panel, live: SimServer) -> None:
    generate(p, "a lighthouse", model="gpt-image-2", quality="low")
    assert "complexity" not in live.requests[-1]
