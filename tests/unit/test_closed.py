"""engine.closed: the one frozen base model refuses unknown keys and changes; ClosedText trims strings."""

from __future__ import annotations

import pydantic
import pytest

from engine.closed import Closed, ClosedText
from engine.models.card import ModelCard
from engine.policy import testcases
from engine.policy.schema import FlowFile
from engine.settings import Settings


class _Plain(Closed):
    name: str


class _Typed(ClosedText):
    name: str


@pytest.mark.parametrize("model", [_Plain, _Typed])
def test_unknown_keys_are_refused_and_models_are_frozen(model: type[Closed]) -> None:
    """A key the model does not declare is a validation error, and a validated model cannot be changed."""
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        model.model_validate({"name": "a", "nmae": "b"})
    value = model.model_validate({"name": "a"})
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        value.name = "b"  # type: ignore[misc]


def test_only_closed_text_trims_strings() -> None:
    """ClosedText trims the spaces around a string; Closed keeps them."""
    assert _Typed.model_validate({"name": "  a "}).name == "a"
    assert _Plain.model_validate({"name": "  a "}).name == "  a "


@pytest.mark.parametrize(("model", "trims"), [(FlowFile, True), (testcases.TestFile, True), (ModelCard, False), (Settings, False)])
def test_the_files_and_settings_use_it(model: type[pydantic.BaseModel], trims: bool) -> None:
    """The policy files, test files, model card and settings are built on the one base, with its config."""
    assert issubclass(model, Closed)
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") == "forbid"
    assert bool(model.model_config.get("str_strip_whitespace")) is trims
