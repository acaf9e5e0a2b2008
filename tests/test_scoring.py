"""The engine against lm-evaluation-harness itself, on a tiny random model with the real tokenizer."""

from __future__ import annotations

import math

import pytest
import torch

from likra.scoring import Scorer

PAIRS = [
    # shared context, several choices of different token lengths (the packed tree)
    ("Question: Which gas do plants take in?\nAnswer:", " carbon dioxide"),
    ("Question: Which gas do plants take in?\nAnswer:", " oxygen"),
    ("Question: Which gas do plants take in?\nAnswer:", " nitrogen and a little argon, mostly"),
    ("Question: Which gas do plants take in?\nAnswer:", " H"),
    # Winogrande style: different contexts, one continuation
    ("Sarah was a better surgeon than Maria so Sarah", " always got the harder cases."),
    ("Sarah was a better surgeon than Maria so Maria", " always got the harder cases."),
    # trailing whitespace moves to the continuation; an empty context uses the prefix token
    ("The sky is ", "blue"),
    ("", " Answer"),
    ("Answer:", " oxygen"),
]


# MMLU's layout: a subject line and solved examples shared by every question of a subject (~300 tokens here),
# then the question and its choices; two subjects, and one request that shares nothing (a group must save a
# batch's worth of tokens: 5 x ~290 shared tokens here)
SHOTS = "".join(f"Question: What is {i} plus {i}?\nAnswer: {2 * i}\n\n" for i in range(16))
SHARED = [
    (f"The following are questions about {subject}.\n\n{SHOTS}Question: {question}\nAnswer:", choice)
    for subject in ("sums", "arithmetic")
    for question in ("What is 7 plus 7?", "What is seven plus seven, in words?", "And 12 plus 12?", "12+12?",
                     "What do you get when you add 7 to itself?", "Seven and seven make?")
    for choice in (" 14", " fourteen", " 24 or so")
] + [("Question: Which gas do plants take in?\nAnswer:", " carbon dioxide")]


def lm_eval_reference(model, tokenizer, pairs, batch_size=1):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    return lm.loglikelihood([Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)])


@pytest.mark.parametrize(
    "options", [{}, {"batch_tokens": 1, "two_phase_from": 1}], ids=["packed-batches", "two-phase-rows"]
)
def test_matches_lm_eval_harness(tiny_model, tokenizer, options):
    ours = Scorer(tiny_model, tokenizer, **options).loglikelihoods(PAIRS)
    reference = lm_eval_reference(tiny_model, tokenizer, PAIRS)
    for mine, (logprob, greedy) in zip(ours, reference, strict=True):
        assert mine.logprob == pytest.approx(logprob, abs=1e-4)
        assert mine.greedy == greedy
    assert all(math.isfinite(v.logprob) and v.logprob < 0 for v in ours)


def test_token_counts_and_encoding_follow_lm_eval(tokenizer, tiny_model):
    scorer = Scorer(tiny_model, tokenizer)
    ((context, continuation),) = scorer.encode([("The sky is ", "blue")])
    assert context == tokenizer("The sky is")["input_ids"]
    assert continuation == tokenizer("The sky is blue")["input_ids"][len(context) :]
    ((context, continuation),) = scorer.encode([("", " Answer")])
    assert context == [scorer.prefix_token_id]
    values = scorer.loglikelihoods(PAIRS)
    assert [v.n_tokens for v in values] == [len(c) for _, c in scorer.encode(PAIRS)]


@pytest.mark.parametrize("batch_tokens", [1, 64, 100_000])
def test_batching_does_not_change_results(tiny_model, tokenizer, batch_tokens):
    reference = Scorer(tiny_model, tokenizer, batch_tokens=1024).loglikelihoods(PAIRS)
    values = Scorer(tiny_model, tokenizer, batch_tokens=batch_tokens).loglikelihoods(PAIRS)
    for a, b in zip(values, reference, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-5)


def test_shared_context_is_encoded_once(tiny_model, tokenizer):
    """Four choices of one question make one packed row, not four forward passes over the context."""
    scorer = Scorer(tiny_model, tokenizer)
    calls = []
    original = scorer._forward
    scorer._forward = lambda batch, prefix=None: calls.append([len(r.continuations) for r in batch]) or original(batch)
    scorer.loglikelihoods(PAIRS[:4])
    assert calls == [[4]]


def test_progress_reports_every_request(tiny_model, tokenizer):
    done = []
    Scorer(tiny_model, tokenizer, batch_tokens=32).loglikelihoods(PAIRS, progress=done.append)
    assert sum(done) == len(PAIRS) and len(done) > 1


def test_long_context_is_truncated_on_the_left(tiny_model, tokenizer):
    long_context = "word " * 2000  # far beyond the tiny model's 512 positions
    (value,) = Scorer(tiny_model, tokenizer).loglikelihoods([(long_context, " end")])
    (reference,) = Scorer(tiny_model, tokenizer).loglikelihoods([("word " * 600, " end")])
    assert math.isfinite(value.logprob)
    assert value.logprob == pytest.approx(reference.logprob, abs=1e-4)  # both see the last 511 tokens


def test_an_answer_longer_than_the_context_is_scored_on_its_end_and_said_once(tiny_model, tokenizer, caplog):
    """Issue 38, root cause 8: a 9,001-token answer was scored on its last tokens without a word."""
    scorer = Scorer(tiny_model, tokenizer, max_length=32)
    with caplog.at_level("WARNING", logger="likra"):
        long, short = scorer.loglikelihoods([("Q:", " word" * 40), ("Q:", " word" * 60), ("Q:", " end")])[:2]
    assert scorer.cut_answers == 2 and long.n_tokens == short.n_tokens == 32  # both cut to the last 32 tokens
    said = [r.getMessage() for r in caplog.records if "longer than the model's context" in r.getMessage()]
    assert said == ["likra: an answer longer than the model's context (32 tokens) is scored on its last 32 tokens "
                    "only, as lm-eval does"]  # fmt: skip


def tiny_gemma(vocab_size: int, sliding_window: int, max_positions: int = 512):
    """A random two-layer Gemma-3: one sliding-window layer, one full-attention layer."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        sliding_window=sliding_window,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=max_positions,
    )
    return Gemma3ForCausalLM(config).eval()


@pytest.mark.parametrize("two_phase_from", [10_000, 1])
def test_sliding_window_models_get_their_own_mask(tokenizer, two_phase_from):
    """A model mixing sliding-window and full attention (Gemma-3) scores as in a plain forward pass."""
    model = tiny_gemma(len(tokenizer), sliding_window=8)
    context = "one two three four five six seven eight nine ten eleven twelve"
    choices = [" thirteen fourteen", " and so on until the end"]
    scorer = Scorer(model, tokenizer, batch_tokens=1, two_phase_from=two_phase_from)
    ours = scorer.loglikelihoods([(context, c) for c in choices])
    for value, choice in zip(ours, choices, strict=True):
        ids = tokenizer(context + choice, return_tensors="pt")["input_ids"]
        n_context = len(tokenizer(context)["input_ids"])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(ids).logits[0].float(), -1)
        targets = ids[0, n_context:]
        expected = logprobs[n_context - 1 : -1].gather(1, targets[:, None]).sum().item()
        assert value.logprob == pytest.approx(expected, abs=1e-4)


def test_bfloat16_stays_close_to_float32(tiny_model, tokenizer):
    import copy

    half = copy.deepcopy(tiny_model).to(torch.bfloat16)
    exact = Scorer(tiny_model, tokenizer).loglikelihoods(PAIRS)
    approx = Scorer(half, tokenizer).loglikelihoods(PAIRS)
    for a, b in zip(approx, exact, strict=True):
        assert a.logprob == pytest.approx(b.logprob, rel=0.05, abs=0.5)


def test_many_answers_after_one_context_are_split_into_bounded_rows(tiny_model, tokenizer):
    """The calibration pass puts every answer of a benchmark after the same bare cue: rows must stay small."""
    pairs = [("Answer:", f" choice number {i} of many") for i in range(300)]
    scorer = Scorer(tiny_model, tokenizer, batch_tokens=512)
    lengths = []
    original = scorer._forward
    scorer._forward = lambda batch, prefix=None: lengths.extend(r.length for r in batch) or original(batch)
    values = scorer.loglikelihoods(pairs)
    assert len(lengths) > 10 and max(lengths) <= 2 + scorer.row_answer_tokens
    # a GPU's large budget does not make one long row, which could not be split when memory runs out
    assert Scorer(tiny_model, tokenizer, batch_tokens=65536).row_answer_tokens == 1024
    reference = Scorer(tiny_model, tokenizer, batch_tokens=100_000).loglikelihoods(pairs)
    for a, b in zip(values, reference, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)


@pytest.mark.parametrize(
    "options", [{}, {"batch_tokens": 1, "two_phase_from": 1}], ids=["packed-batches", "two-phase-rows"]
)
def test_one_pass_scores_every_head_as_separate_runs_would(tokenizer, options):
    """Mixed-adapter batches: base, positive and negative numbers from one pass equal one run per adapter."""
    from peft import LoraConfig, get_peft_model

    from .conftest import tiny_llama

    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["gate_proj", "up_proj", "down_proj"], init_lora_weights=False)
    model = get_peft_model(tiny_llama(len(tokenizer)), lora, adapter_name="positive")
    torch.manual_seed(1)
    model.add_adapter("negative", lora)  # init_lora_weights=False: both heads differ from the base at once
    model.eval()
    mixed = Scorer(model, tokenizer, heads=("base", "positive", "negative"), **options).loglikelihoods_by_head(PAIRS)
    for head in ("positive", "negative"):
        model.set_adapter(head)
        alone = Scorer(model, tokenizer, **options).loglikelihoods(PAIRS)
        assert [v.logprob for v in mixed[head]] == pytest.approx([v.logprob for v in alone], abs=1e-5)
    with model.disable_adapter():
        base = Scorer(model, tokenizer, **options).loglikelihoods(PAIRS)
    assert [v.logprob for v in mixed["base"]] == pytest.approx([v.logprob for v in base], abs=1e-5)
    assert [v.logprob for v in mixed["positive"]] != pytest.approx([v.logprob for v in base], abs=1e-3)


@pytest.mark.parametrize("options", [{}, {"batch_tokens": 1}], ids=["packed-batches", "one-row-batches"])
def test_shared_prefix_is_computed_once_with_the_same_numbers(tiny_model, tokenizer, options):
    """Contexts sharing a long prefix: it runs once per group, and every number is what the request gets alone
    (lm-eval's, and ours without prefix groups)."""
    scorer = Scorer(tiny_model, tokenizer, **options)
    prefixes = []
    original = scorer._prefix_cache
    scorer._prefix_cache = lambda ids: prefixes.append(len(ids)) or original(ids)
    ours = scorer.loglikelihoods(SHARED)
    assert len(prefixes) == 2 and min(prefixes) > 250  # one per subject; the lone question runs as before
    plain = Scorer(tiny_model, tokenizer, shared_prefix_from=0, **options).loglikelihoods(SHARED)
    assert [v.logprob for v in ours] == pytest.approx([v.logprob for v in plain], abs=1e-4)
    assert [v.greedy for v in ours] == [v.greedy for v in plain]
    reference = lm_eval_reference(tiny_model, tokenizer, SHARED[::4])
    assert [v.logprob for v in ours[::4]] == pytest.approx([logprob for logprob, _ in reference], abs=1e-4)


def test_shared_prefix_under_every_head_and_sliding_windows(tokenizer):
    """A head's prefix cache is its own (LoRA changes the keys), and sliding-window layers see only their window
    of the prefix."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(tiny_gemma(len(tokenizer), sliding_window=64), lora, adapter_name="positive").eval()
    heads = ("base", "positive")
    shared = Scorer(model, tokenizer, heads=heads).loglikelihoods_by_head(SHARED)
    plain = Scorer(model, tokenizer, heads=heads, shared_prefix_from=0).loglikelihoods_by_head(SHARED)
    for head in heads:
        assert [v.logprob for v in shared[head]] == pytest.approx([v.logprob for v in plain[head]], abs=1e-4)
    assert [v.logprob for v in shared["positive"]] != pytest.approx([v.logprob for v in shared["base"]], abs=1e-3)


def test_real_mmlu_rows_keep_their_own_tokens(tiny_model, tokenizer, data_dir):
    """MMLU 5-shot: each subject's shots form one group, and every request scores as it does alone."""
    from likra.evaluation import EvalConfig, prepare

    requests = prepare(EvalConfig(task="mmlu", subjects=["management", "medical_genetics"], shots=5,
                                  data_dir=str(data_dir)))  # fmt: skip
    requests = [r for r in requests if r.item.meta["subject"] == "management"][:12] + [
        r for r in requests if r.item.meta["subject"] == "medical_genetics"][:12]  # fmt: skip
    pairs = [(c, x) for r in requests for c, x in zip(r.contexts, r.continuations, strict=True)]
    scorer = Scorer(tiny_model, tokenizer)
    prefixes = []
    original = scorer._prefix_cache
    scorer._prefix_cache = lambda ids: prefixes.append(len(ids)) or original(ids)
    ours = scorer.loglikelihoods(pairs)
    assert len(prefixes) == 2 and min(prefixes) > 100
    plain = Scorer(tiny_model, tokenizer, shared_prefix_from=0).loglikelihoods(pairs)
    assert [v.logprob for v in ours] == pytest.approx([v.logprob for v in plain], abs=1e-4)
    assert [v.n_tokens for v in ours] == [v.n_tokens for v in plain]
