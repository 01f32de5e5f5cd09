"""A run's options are checked before any work: a generation budget below one continuation, or not a whole
number of tokens, is refused naming the value; a good one is what every probe of the run uses."""

from __future__ import annotations

import pytest

from erasure.engine import EngineOptions
from erasure.errors import ConfigurationError


@pytest.mark.parametrize("budget", [0, 31, -1024, True, 512.0, "1024"])
def test_a_generation_budget_below_one_continuation_or_not_whole_tokens_is_refused(budget):
    with pytest.raises(ConfigurationError, match=r"generation budget .* got " + repr(budget).replace(".", r"\.")):
        EngineOptions(generation_budget=budget)


def test_the_generation_budget_is_what_the_probes_use():
    config = EngineOptions(generation_budget=512).probe_config()
    assert config.generation_token_budget == 512 and config.max_new_tokens == 32
    assert EngineOptions().probe_config().generation_token_budget == 1024
