"""Requests scored into ``ItemScores``: every choice's log-likelihood under the base model and each head, and the
unconditional controls, from any source of log-likelihoods by head (a plain model's ``Scorer`` or a
``likra.checkpoints.Checkpoint``). Evaluation, the verifier and the experiments share it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from likra.data.prompts import TARGET_DELIMITER, ItemRequests
from likra.errors import LikraError
from likra.metrics import ItemScores
from likra.scoring import LogLikelihood, Scorer

Pair = tuple[str, str]
# pairs and a progress callback → each head's log-likelihoods ("base": the model without adapters)
ByHead = Callable[[Sequence[Pair], Callable[[float], None] | None], dict[str, list[LogLikelihood]]]


def of_model(scorer: Scorer) -> ByHead:
    """A ``Scorer``'s log-likelihoods by head (a scorer without heads scores the model as "base")."""
    if scorer.heads:
        return scorer.loglikelihoods_by_head
    return lambda pairs, progress: {"base": scorer.loglikelihoods(pairs, progress)}


def score_requests(
    by_head: ByHead,
    requests: Sequence[ItemRequests],
    progress: Callable[[int], None] | None = None,
    calibrate: bool = True,
    base: Sequence[ItemScores] | None = None,
) -> list[ItemScores]:
    """Score every choice of every item, and the unconditional controls, in one ``by_head`` call (``of_model``'s
    or ``Checkpoint.loglikelihoods``).

    ``base``: the base model's scores of the same requests from an earlier run; a ``by_head`` that leaves out
    "base" then runs only the trained heads (a learning curve scores the base model once, not per checkpoint)."""
    pairs = [(c, x) for r in requests for c, x in zip(r.contexts, r.continuations, strict=True)]
    n_conditional = len(pairs)
    if calibrate:
        pairs += [pair for r in requests for pair in r.unconditional]
    trained = by_head(pairs, progress)
    values = trained.pop("base", None)
    if values is None and (base is None or [b.id for b in base] != [r.item.id for r in requests]):
        raise LikraError("base scores are needed for the same questions in the same order (--base-items)")
    out, at = [], 0
    for i, r in enumerate(requests):
        k = len(r.continuations)
        answers = [c[len(TARGET_DELIMITER) :] for c in r.continuations]

        def logprobs(per_request: Sequence[LogLikelihood], offset: int, at: int = at, k: int = k) -> list[float]:
            return [v.logprob for v in per_request[offset + at : offset + at + k]]

        if values is None:
            assert base is not None
            if calibrate and not base[i].unconditional:
                raise LikraError("the base scores were made without calibration; add --no-calibrate")
            own = (base[i].loglikelihoods, base[i].unconditional if calibrate else [], base[i].n_tokens)
        else:
            own = (logprobs(values, 0), logprobs(values, n_conditional), [v.n_tokens for v in values[at : at + k]])
        out.append(
            ItemScores(
                id=r.item.id,
                label=r.item.label,
                loglikelihoods=own[0],
                unconditional=own[1],  # empty without calibration
                n_tokens=own[2],
                n_chars=[len(a) for a in answers],
                n_bytes=[len(a.encode("utf-8")) for a in answers],
                heads={head: logprobs(v, 0) for head, v in trained.items()},
                heads_unconditional={head: logprobs(v, n_conditional) for head, v in trained.items()}
                if calibrate
                else {},
            )
        )
        at += k
    return out
