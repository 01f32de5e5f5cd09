"""Tests of the remedy registry and the approximate methods, on a real tiny model and adapter (CPU)."""

from __future__ import annotations

import ast
import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
import torch
from pydantic import BaseModel
from safetensors.torch import load_file, save_file

from lethe.demo.corpus import generate_corpus
from unlearning.adapters import lora_b_all_zero, sequence_nll
from unlearning.base_model import model_dir_sha256
from unlearning.errors import RemedyError
import unlearning.methods.registry
from unlearning.methods import grad_diff, gradient_ascent, npo
from unlearning.methods.base import MethodKind, RemedyInput
from unlearning.methods.changed import check_adapter_changed
from unlearning.methods.losses import (grad_diff_loss, gradient_ascent_loss, npo_loss, sequence_stats,
                                       token_nll)
from unlearning.methods.registry import MethodSpec, get_method, method_names, parse_config, register_method
from unlearning.runtime import select_device
from unlearning.training import LoraTrainingConfig, train_lora_adapter

APPROXIMATE = ("gradient_ascent", "grad_diff", "npo")
MODULES = {"gradient_ascent": gradient_ascent, "grad_diff": grad_diff, "npo": npo}
MANIFEST = {"dataset_version": "dv-test", "base_model_sha256": "0" * 64}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a 2-core machine shared with other work, two threads made these tiny steps
    ~25x slower (0.12 s -> 3 s each, measured) as each waited for a core the other work held."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setting(tiny_base_model, tmp_path_factory):
    """A served adapter fine-tuned on 20 records, 4 of them one text (memorized): forget those, retain 16."""
    corpus = generate_corpus(customers=12, seed=5)
    text = {record["id"]: record["text"] for record in corpus.records}
    train_ids = sorted(text)[:20]
    repeated = set(corpus.truth["repeated_record_ids"][0])
    forget = {i: text[i] for i in train_ids if i in repeated}
    retain = {i: text[i] for i in train_ids if i not in repeated}
    served = tmp_path_factory.mktemp("served") / "adapter"
    train_lora_adapter(tiny_base_model, [text[i] for i in train_ids], LoraTrainingConfig(epochs=10), served)
    return {"base": tiny_base_model, "served": served, "digest": model_dir_sha256(served), "forget": forget,
            "retain": retain, "work": tmp_path_factory.mktemp("remedies")}


def remedy_input(setting, out_name: str, **changes) -> RemedyInput:
    values = dict(base_model_dir=setting["base"], adapter_dir=setting["served"], forget=setting["forget"],
                  retain=setting["retain"], out_dir=setting["work"] / out_name, manifest=MANIFEST)
    return RemedyInput(**{**values, **changes})


def nll(setting, adapter: Path | None, which: str) -> float:
    """Mean NLL of the distinct texts of the forget or retain set under base (+ adapter)."""
    return statistics.mean(sequence_nll(setting["base"], adapter, sorted(set(setting[which].values()))))


@pytest.fixture(scope="module")
def outcomes(setting):
    """Each approximate method run once with its default config, with its step callbacks recorded."""
    results = {}
    for name in APPROXIMATE:
        calls = []
        spec = get_method(name)
        outcome = spec.run(parse_config(name), remedy_input(setting, name),
                           on_step=lambda step, total, loss, calls=calls: calls.append((step, total, loss)))
        results[name] = (outcome, calls)
    return results


# --- registry -------------------------------------------------------------------------------------------

def test_registry_lists_the_approximate_methods():
    assert set(APPROXIMATE) <= set(method_names())
    for name in APPROXIMATE:
        spec = get_method(name)
        assert spec is MODULES[name].SPEC and spec.run is MODULES[name].run
        assert spec.kind is MethodKind.APPROXIMATE


def test_registry_refuses_a_duplicate_name():
    with pytest.raises(RemedyError, match="already registered"):
        register_method(MethodSpec("npo", MethodKind.APPROXIMATE, npo.NpoConfig, npo.run))
    assert get_method("npo") is npo.SPEC


@pytest.mark.parametrize("name", ["Bad", "x", "1st", "with-dash", "a" * 41, "", 7])
def test_registry_refuses_bad_names(name):
    with pytest.raises(RemedyError, match="lower_snake_case"):
        register_method(MethodSpec(name, MethodKind.APPROXIMATE, npo.NpoConfig, npo.run))


def test_registry_refuses_a_config_that_is_not_a_method_config_and_a_bad_kind():
    class Loose(BaseModel):
        steps: int = 1

    with pytest.raises(RemedyError, match="subclass MethodConfig"):
        register_method(MethodSpec("loose_method", MethodKind.APPROXIMATE, Loose, npo.run))
    with pytest.raises(RemedyError, match="MethodKind"):
        register_method(MethodSpec("kindless_method", "approximate", npo.NpoConfig, npo.run))
    with pytest.raises(RemedyError, match="run must be a function"):
        register_method(MethodSpec("runless_method", MethodKind.APPROXIMATE, npo.NpoConfig, "npo.run"))
    with pytest.raises(RemedyError, match="takes a MethodSpec, got dict"):
        register_method({"name": "dict_method"})
    assert not {"loose_method", "kindless_method", "runless_method", "dict_method"} & set(method_names())


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level}
    found |= {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    return found | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def test_every_method_is_registered_whichever_module_is_imported_first():
    # The methods register themselves and the package's __init__ imports every one; the registry imports
    # none. Python runs a package's __init__ before any of its submodules, so whichever module a caller
    # imports first, every method is registered. Read from the sources (a fresh interpreter importing
    # torch to show the same took 12 s of the default run).
    package = Path(unlearning.methods.registry.__file__).parent
    registering = {f"unlearning.methods.{p.stem}" for p in package.glob("*.py")
                   if p.stem != "registry" and "register_method(" in p.read_text()}
    assert registering == {f"unlearning.methods.{name}" for name in method_names()}
    assert registering <= _imported_modules(package / "__init__.py")
    assert not _imported_modules(package / "registry.py") & (registering | {"unlearning.methods"})


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(RemedyError, match="unknown remedy method 'forget_all'") as caught:
        get_method("forget_all")
    assert all(name in str(caught.value) for name in APPROXIMATE)


def test_default_configs():
    ga, gd, n = (parse_config(name) for name in APPROXIMATE)
    assert (ga.steps, ga.learning_rate, ga.batch_size, ga.max_length, ga.seed) == (20, 3e-4, 8, 128, 0)
    assert (gd.steps, gd.learning_rate, gd.retain_weight) == (20, 3e-4, 1.0)
    assert (n.steps, n.learning_rate, n.beta, n.retain_weight) == (20, 3e-3, 0.1, 1.0)
    with pytest.raises(ValueError):
        ga.steps = 5  # frozen: a config recorded in an attestation cannot drift


@pytest.mark.parametrize("name, values, field", [
    ("gradient_ascent", {"steps": 0}, "steps"),
    ("gradient_ascent", {"steps": 100_001}, "steps"),
    ("gradient_ascent", {"batch_size": 0}, "batch_size"),
    ("gradient_ascent", {"retain_weight": 1.0}, "retain_weight"),  # no retain term: unknown field
    ("grad_diff", {"learning_rate": 0}, "learning_rate"),
    ("grad_diff", {"retain_weight": -1}, "retain_weight"),
    ("grad_diff", {"max_length": 1}, "max_length"),
    ("npo", {"learning_rate": 1.5}, "learning_rate"),
    ("npo", {"beta": 0}, "beta"),
    ("npo", {"batch_size": 4097}, "batch_size"),
    ("npo", {"seed": -1}, "seed"),
])
def test_parse_config_names_the_bad_field(name, values, field):
    with pytest.raises(RemedyError, match=f"bad config for method '{name}': {field}:"):
        parse_config(name, values)


# --- losses on hand-made numbers ------------------------------------------------------------------------

def test_token_and_sequence_nll_on_known_probabilities():
    probs = torch.tensor([0.5, 0.25, 0.125, 0.125])
    logits = probs.log().expand(2, 4, 4).clone()  # every position predicts the same distribution
    labels = torch.tensor([[0, 0, 1, 2], [0, 3, -100, -100]])  # row 2: two real tokens, then padding
    nll, mask = token_nll(logits, labels)
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    assert torch.allclose(nll, torch.tensor([[math.log(2), math.log(4), math.log(8)], [math.log(8), 0, 0]]))
    mean_nll, logp = sequence_stats(logits, labels)
    assert torch.allclose(mean_nll, torch.tensor([math.log(64) / 3, math.log(8)]))
    assert torch.allclose(logp, torch.tensor([-math.log(64), -math.log(8)]))


def test_ascent_and_grad_diff_losses():
    forget, retain = torch.tensor([1.0, 3.0]), torch.tensor([0.5, 1.5])
    assert float(gradient_ascent_loss(forget)) == -2.0
    assert float(grad_diff_loss(forget, retain, 2.0)) == 0.0
    assert float(grad_diff_loss(forget, None, 0.0)) == -2.0
    with pytest.raises(ValueError, match="needs the retained"):
        grad_diff_loss(forget, None, 1.0)


def test_npo_loss_values_and_fading_gradient():
    beta = 0.1
    ref = torch.tensor([-50.0, -80.0])
    assert float(npo_loss(ref.clone(), ref, beta)) == pytest.approx(2 / beta * math.log(2))
    assert float(npo_loss(ref - 10, ref, beta)) == pytest.approx(2 / beta * math.log1p(math.exp(-1)))
    assert float(npo_loss(ref, ref, beta, torch.tensor([1.0, 2.0]), 2.0)) == pytest.approx(
        2 / beta * math.log(2) + 3.0)
    # dL/dlogp = 2σ(β(logp - ref)) / n: gradient ascent's pull at the start, fading once the text is unlikely.
    for shift, expected in [(0.0, 0.5), (-100.0, 2 * torch.sigmoid(torch.tensor(-10.0)).item() / 2)]:
        logp = (ref + shift).requires_grad_()
        npo_loss(logp, ref, beta).backward()
        assert logp.grad.tolist() == pytest.approx([expected, expected], abs=1e-7)
    with pytest.raises(ValueError, match="beta > 0"):
        npo_loss(ref, ref, 0.0)


# --- the methods on a real adapter ----------------------------------------------------------------------

@pytest.mark.parametrize("name", APPROXIMATE)
def test_method_raises_forget_nll_and_records_its_work(setting, outcomes, name):
    outcome, calls = outcomes[name]
    config = parse_config(name)
    before, after = nll(setting, setting["served"], "forget"), nll(setting, outcome.adapter_dir, "forget")
    base = nll(setting, None, "forget")
    print(f"\n{name}: forget NLL base {base:.3f}, served {before:.3f}, after {after:.3f} "
          f"({outcome.steps} steps, {outcome.seconds:.1f} s)")
    assert after > 2 * before  # the memorized text is no longer memorized
    assert outcome.details["forget_nll_before"] == pytest.approx(before, abs=1e-4)
    assert outcome.details["forget_nll_after"] == pytest.approx(after, abs=1e-4)
    assert outcome.details["forget_records"] == 4 and outcome.details["device"] == select_device().type
    assert outcome.details["retain_records"] == (0 if name == "gradient_ascent" else 16)
    assert outcome.method == name and outcome.kind is MethodKind.APPROXIMATE
    assert outcome.config == config.model_dump(mode="json")
    assert outcome.steps == config.steps == len(outcome.losses) and outcome.seconds > 0
    assert [(step, total) for step, total, _ in calls] == [(i, config.steps) for i in range(1, 21)]
    assert [loss for _, _, loss in calls] == outcome.losses and all(map(math.isfinite, outcome.losses))
    # A new adapter, written whole, with its manifest; the served one is untouched.
    assert outcome.adapter_sha256 == model_dir_sha256(outcome.adapter_dir) != setting["digest"]
    assert model_dir_sha256(setting["served"]) == setting["digest"]
    assert not lora_b_all_zero(outcome.adapter_dir)
    raw = (outcome.adapter_dir / "lethe_manifest.json").read_text()
    manifest = json.loads(raw)
    assert manifest == {**MANIFEST, "remedy_method": name, "remedy_config": outcome.config}
    assert list(manifest) == sorted(manifest)


@pytest.mark.parametrize("name", APPROXIMATE)
def test_method_is_deterministic_for_a_seed(setting, name):
    config = parse_config(name, {"steps": 3})
    first, second = (MODULES[name].run(config, remedy_input(setting, f"{name}-seed-{i}")) for i in range(2))
    assert first.adapter_sha256 == second.adapter_sha256 and first.losses == second.losses
    if name != "gradient_ascent":
        # The 4 forget texts fit one batch of 8, so only the retain batches depend on the seed.
        other_seed = parse_config(name, {"steps": 3, "seed": 1})
        other = MODULES[name].run(other_seed, remedy_input(setting, f"{name}-s1"))
        assert other.adapter_sha256 != first.adapter_sha256
    assert model_dir_sha256(setting["served"]) == setting["digest"]


def test_retain_term_keeps_retained_records_closer_than_plain_ascent(setting, outcomes):
    """Same steps (20) and learning rate (3e-4): the retain NLL moves less with a retain term."""
    served = nll(setting, setting["served"], "retain")
    npo_same = npo.run(parse_config("npo", {"learning_rate": 3e-4}), remedy_input(setting, "npo-3e-4"))
    moved = {name: abs(nll(setting, outcome.adapter_dir, "retain") - served) for name, outcome in
             [("gradient_ascent", outcomes["gradient_ascent"][0]), ("grad_diff", outcomes["grad_diff"][0]),
              ("npo", npo_same)]}
    print(f"\nretain NLL of the served adapter {served:.3f}; moved by " +
          ", ".join(f"{name} {delta:.3f}" for name, delta in moved.items()))
    assert moved["grad_diff"] < moved["gradient_ascent"] and moved["npo"] < moved["gradient_ascent"]


def test_plain_npo_needs_no_retain_set(setting):
    outcome = npo.run(parse_config("npo", {"steps": 2, "retain_weight": 0}),
                      remedy_input(setting, "plain-npo", retain={}))
    assert outcome.details["retain_records"] == 0 and outcome.adapter_sha256 != setting["digest"]


@pytest.mark.parametrize("name, changes, message", [
    ("gradient_ascent", {"forget": {}}, "forget set is empty"),
    ("grad_diff", {"retain": {}}, "retain set is empty"),
    ("npo", {"retain": {}}, "retain set is empty"),
    ("npo", {"forget": {"r-1": "  "}}, "forget record 'r-1' has no text"),
    ("gradient_ascent", {"out_dir": "served"}, "already exists"),
    ("gradient_ascent", {"out_dir": "inside"}, "inside the served adapter"),
    ("grad_diff", {"adapter_dir": "not-an-adapter"}, "not a LoRA adapter directory"),
])
def test_method_refuses_bad_input(setting, tmp_path, name, changes, message):
    paths = {"served": setting["served"], "inside": setting["served"] / "remedied",
             "not-an-adapter": tmp_path}
    changes = {key: paths[value] if isinstance(value, str) else value for key, value in changes.items()}
    if "out_dir" not in changes:
        changes["out_dir"] = tmp_path / "out"
    with pytest.raises(RemedyError, match=message):
        MODULES[name].run(parse_config(name), remedy_input(setting, "unused", **changes))
    assert not (tmp_path / "out").exists()
    assert model_dir_sha256(setting["served"]) == setting["digest"]


# --- the adapter-changed check --------------------------------------------------------------------------

def test_changed_check_accepts_a_remedied_adapter(setting, outcomes):
    new = outcomes["grad_diff"][0].adapter_dir
    assert check_adapter_changed(setting["served"], new) == model_dir_sha256(new)


def test_changed_check_refuses_a_copy(setting, tmp_path):
    copy = shutil.copytree(setting["served"], tmp_path / "copy")
    with pytest.raises(RemedyError, match="byte-identical.*did nothing"):
        check_adapter_changed(setting["served"], copy)
    (copy / "lethe_manifest.json").write_text("{}")  # other files, same weights: still nothing done
    with pytest.raises(RemedyError, match="exactly the old LoRA weights.*did nothing"):
        check_adapter_changed(setting["served"], copy)


def test_changed_check_refuses_all_zero_b(setting, tmp_path):
    copy = shutil.copytree(setting["served"], tmp_path / "zero-b")
    weights = copy / "adapter_model.safetensors"
    tensors = load_file(weights)
    assert any(".lora_B." in key for key in tensors)
    save_file({key: torch.zeros_like(t) if ".lora_B." in key else t for key, t in tensors.items()}, weights,
              metadata={"format": "pt"})
    with pytest.raises(RemedyError, match="every LoRA B matrix .* is zero.*did nothing"):
        check_adapter_changed(setting["served"], copy)
