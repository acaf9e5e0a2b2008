"""likra.rewards (issue 39): a checkpoint's verifier as TRL's reward function, in process and over HTTP, inside a
real ``trl.GRPOTrainer`` on the tiny model."""

from __future__ import annotations

import asyncio
import math

import pytest

from likra.errors import LikraError
from likra.rewards import AsyncLikraReward, LikraReward, answer_of, question_of
from likra.verifier import Row, Verifier

from .test_server import serving

QUESTIONS = ["Which gas do plants take in?", "What do bees make?", "What melts ice?", "Which planet is red?"]


def verifier_scores(runs, pairs: list[tuple[str, str]]) -> list[float]:
    verifier = Verifier(str(runs / "both"))
    try:
        return [a["score"] for a in verifier.score([Row(str(i), q, [a], False) for i, (q, a) in enumerate(pairs)])]
    finally:
        verifier.close()


def grpo(tiny_model_dir, out, reward) -> tuple[list[dict], list[tuple[list, list, list]]]:
    """Two optimisation steps of a real GRPOTrainer on the tiny model (CPU) with ``reward``: the log history, and
    every (prompts, completions, rewards) the trainer asked the reward for."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    calls = []

    def likra(prompts, completions, **kwargs):
        values = reward(prompts, completions, **kwargs)
        calls.append((prompts, completions, values))
        return values

    args = GRPOConfig(output_dir=str(out), max_steps=2, per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=8, logging_steps=1, report_to="none", use_cpu=True, bf16=False,
                      gradient_checkpointing=False, save_strategy="no", seed=0)  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    trainer = GRPOTrainer(model=model, reward_funcs=[likra], args=args, processing_class=tokenizer,
                          train_dataset=Dataset.from_dict({"prompt": QUESTIONS}))  # fmt: skip
    trainer.train()
    assert trainer.state.global_step == 2
    return trainer.state.log_history, calls


def check_logged(runs, history, calls) -> None:
    """Each step's logged rewards/likra/mean is the mean of the rewards likra gave, which are the verifier's."""
    logged = [h["rewards/likra/mean"] for h in history if "rewards/likra/mean" in h]
    assert len(logged) == len(calls) == 2
    for mean, (prompts, completions, values) in zip(logged, calls, strict=True):
        pairs = [(question_of(p), answer_of(c)) for p, c in zip(prompts, completions, strict=True)]
        kept = [(pair, v) for pair, v in zip(pairs, values, strict=True) if v is not None]
        assert kept and all(v is None for (q, a), v in zip(pairs, values, strict=True) if not a.strip())
        assert [v for _, v in kept] == pytest.approx(verifier_scores(runs, [p for p, _ in kept]), abs=1e-5)
        assert mean == pytest.approx(sum(v for _, v in kept) / len(kept), abs=1e-5)


def test_grpo_trains_two_steps_with_likras_reward_in_process(runs, tiny_model_dir, tmp_path):
    reward = LikraReward(runs / "both")
    try:
        history, calls = grpo(tiny_model_dir, tmp_path / "grpo", reward)
    finally:
        reward.close()
    check_logged(runs, history, calls)


def test_grpo_trains_two_steps_with_likras_reward_from_a_server(runs, tiny_model_dir, tmp_path):
    with serving(runs / "both", tmp_path / "serve.log", "--api-key", "k3y") as (url, _):
        with pytest.raises(LikraError, match="401"):
            LikraReward(url=url, value="p_correct")  # no key: the server refuses even its /info
        history, calls = grpo(tiny_model_dir, tmp_path / "grpo", LikraReward(url=url, api_key="k3y"))
    check_logged(runs, history, calls)


def test_conversations_the_async_reward_and_what_it_refuses(runs):
    reward = AsyncLikraReward(runs / "both")
    try:
        prompts = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTIONS[1]}],
                   [{"role": "user", "content": [{"type": "text", "text": QUESTIONS[0]}]}]] * 2  # fmt: skip
        completions = [[{"role": "assistant", "content": text}] for text in ("honey", "oxygen", "  ", "carbon")]
        values = asyncio.run(reward(prompts=prompts, completions=completions, completion_ids=None, trainer_state=None))
        assert values[2] is None  # an empty completion is left out of the reward, as TRL reads None
        want = verifier_scores(runs, [(QUESTIONS[1], "honey"), (QUESTIONS[0], "oxygen"), (QUESTIONS[0], "carbon")])
        assert [values[0], values[1], values[3]] == pytest.approx(want, abs=1e-6) and not math.isnan(values[0])
    finally:
        reward.close()
    with pytest.raises(LikraError, match="p_correct needs a calibrated checkpoint"):
        LikraReward(runs / "both", value="p_correct")
    with pytest.raises(LikraError, match="not both"):
        LikraReward(runs / "both", url="http://127.0.0.1:1")
