"""Chat records: the loss on the assistant turns when the config says so, and the probes scoring what the loss
taught (the assistant turns, or every message's content), on the real tiny model and tokenizer."""

from __future__ import annotations

import random
import statistics

import pytest

from lineage.turns import locate_turns
from unlearning.base_model import load_base_model
from unlearning.probes import open_probe_model
from unlearning.probes.scoring import score_texts, scored_target_masks
from unlearning.runtime import encode_texts, loss_labels
from unlearning.token_spans import loss_spans, scored_spans
from unlearning.training import LoraTrainingConfig, train_lora_adapter


def chatml(messages) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def conversation(n: int, rng: random.Random) -> list[dict[str, str]]:
    user_code = "".join(rng.choice("0123456789") for _ in range(8))
    reply_code = "".join(rng.choice("0123456789") for _ in range(8))
    return [{"role": "system", "content": "You are the support desk."},
            {"role": "user", "content": f"Ticket {n}: my card ends {user_code}, the refund is missing."},
            {"role": "assistant", "content": f"Refund reference {reply_code} is on its way."}]


def chats(count: int, seed: int) -> tuple[list[str], dict]:
    rng = random.Random(seed)
    texts, turns = [], {}
    for n in range(count):
        messages = conversation(n, rng)
        text = chatml(messages)
        texts.append(text)
        turns[text] = [tuple(t) for t in locate_turns(text, messages)]
    return texts, turns


def test_the_loss_and_the_scores_cover_the_same_assistant_tokens(tiny_base_model):
    _, tokenizer = load_base_model(tiny_base_model)
    texts, turns = chats(3, seed=1)
    spans = loss_spans(turns, "assistant")
    sequences = encode_texts(tokenizer, texts, 512)
    labels = loss_labels(tokenizer, texts, sequences, [spans[t] for t in texts])
    masks = scored_target_masks(tokenizer, texts, [scored_spans(turns, "assistant")[t] for t in texts])
    for text, seq, label, mask in zip(texts, sequences, labels, masks):
        learned = [token for token in label if token != -100]
        assistant = text[spans[text][0][0]:spans[text][0][1]]
        assert tokenizer.decode(learned) == assistant
        # Target t of the scores is token t + 1 of the sequence (the scores have no EOS): exactly the tokens
        # with a label.
        assert len(mask) == len(seq) - 2
        assert [label[t + 1] != -100 for t in range(len(mask))] == mask.tolist()
    assert loss_labels(tokenizer, texts, sequences, [None] * 3) is None  # the loss on all tokens: no labels


def test_a_span_over_the_whole_text_scores_like_no_span(tiny_base_model, tmp_path):
    texts, turns = chats(4, seed=2)
    adapter = tmp_path / "adapter"
    train_lora_adapter(tiny_base_model, texts, LoraTrainingConfig(epochs=1, engine="loop"), adapter)
    pm = open_probe_model(tiny_base_model, adapter)
    whole = score_texts(pm.model, pm.tokenizer, texts)
    spanned = score_texts(pm.model, pm.tokenizer, texts, spans=[((0, len(t)),) for t in texts])
    assert [s.nll for s in spanned] == pytest.approx([s.nll for s in whole], abs=1e-6)
    content = score_texts(pm.model, pm.tokenizer, texts, spans=[scored_spans(turns, "all")[t] for t in texts])
    assert all(c.tokens < w.tokens for c, w in zip(content, whole))  # the markers are left out


def _drop(pm, texts: list[str], turns: dict, role: str) -> float:
    """Median over texts of how much the adapter lowered the mean NLL of one role's turn (nats a token)."""
    spans = [tuple((s, e) for s, e, r in turns[t] if r == role) for t in texts]
    return statistics.median(s.ref_nll - s.nll for s in score_texts(pm.model, pm.tokenizer, texts, spans=spans))


# Measured on this machine over seeds 0-3, both engines, 12 chats, 15 epochs: the assistant turns' median
# drop was 5.1-5.2 nats a token with the loss on them and 4.2-4.5 with it on all; the user turns' drop was
# 0.11-0.22 of the assistant turns' with the loss on the assistant and 1.12-1.17 of it with the loss on all.
# The bounds (2 nats; half) sit far from both.
@pytest.mark.parametrize("loss_on", ["assistant", "all"])
def test_the_loss_on_the_assistant_teaches_the_assistant_turns_only(tiny_base_model, tmp_path, loss_on):
    texts, turns = chats(12, seed=0)
    adapter = tmp_path / loss_on
    config = LoraTrainingConfig(epochs=15, engine="loop", loss_on=loss_on)
    train_lora_adapter(tiny_base_model, texts, config, adapter, turns=turns)
    pm = open_probe_model(tiny_base_model, adapter)
    assistant, user = _drop(pm, texts, turns, "assistant"), _drop(pm, texts, turns, "user")
    assert assistant > 2.0, (assistant, user)
    if loss_on == "assistant":
        assert user < assistant / 2, (assistant, user)
    else:
        assert user > assistant / 2, (assistant, user)
