"""The scoring engine: (context, continuation) pairs → summed log-likelihoods of the continuations.

Tokenisation is lm-evaluation-harness's (trailing spaces of the context move to the continuation; the
continuation's tokens are the tail of the encoded whole), so the numbers agree with it. The work is not:

* every distinct context is encoded **once**, and all its continuations are packed behind it in the same
  row, each attending to the context and to itself only (a tree-shaped 4D attention mask with position ids
  that restart after the context). lm-eval runs the whole context again for every choice;
* vocabulary logits are computed only at the positions that predict a continuation token, not at every
  position (the LM head is a large share of a small model's cost);
* rows are sorted by length and batched up to a token budget, so padding is a few percent at most;
* a long context that fills a batch alone runs under the model's own causal kernel (which skips the masked
  half) and its continuations then attend to its cached keys.

Written by hand because neither transformers nor lm-eval offers shared-prefix scoring; the model itself is
the unmodified transformers module, called with a custom mask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

Pair = tuple[str, str]
TokenPair = tuple[list[int], list[int]]


@dataclass(frozen=True)
class LogLikelihood:
    """The summed log-probability of a continuation, its token count, and whether greedy decoding yields it."""

    logprob: float
    n_tokens: int
    greedy: bool


@dataclass(frozen=True)
class _Row:
    context: list[int]
    continuations: list[list[int]]
    request_ids: list[int]

    @property
    def length(self) -> int:
        return len(self.context) + sum(len(c) - 1 for c in self.continuations)


def _split_trailing_space(context: str, continuation: str) -> Pair:
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


class Scorer:
    """Scores continuations with a causal LM; see the module docstring for how.

    ``batch_tokens`` bounds the padded tokens of one forward pass; ``max_length`` defaults to the model's
    context size (longer contexts are cut on the left, as lm-eval does). A context of ``two_phase_from``
    tokens or more that fills a batch alone is run in two calls (see ``_hidden_two_phase``).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_tokens: int = 1024,
        max_length: int | None = None,
        two_phase_from: int = 256,
        prefix_token_id: int | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_tokens = batch_tokens
        self.two_phase_from = two_phase_from
        self.row_answer_tokens = max(64, batch_tokens // 8)
        config = model.config
        self.max_length = max_length or getattr(config, "max_position_embeddings", None) or 2048
        # lm-eval's prefix for an empty context: BOS if the tokenizer has one, else EOS.
        if prefix_token_id is None:
            prefix_token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self.prefix_token_id = prefix_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.softcap = getattr(config, "final_logit_softcapping", None)
        layer_types = getattr(config, "layer_types", None) or []
        self.sliding_window = getattr(config, "sliding_window", None) if "sliding_attention" in layer_types else None

    # --- tokenisation ---------------------------------------------------------------------------------

    def _encode_many(self, texts: Sequence[str]) -> dict[str, list[int]]:
        unique = list(dict.fromkeys(texts))
        ids = self.tokenizer(unique)["input_ids"] if unique else []
        return dict(zip(unique, ids, strict=True))

    def encode(self, pairs: Sequence[Pair]) -> list[TokenPair]:
        """lm-eval's ``_encode_pair`` for every pair, with one batched tokenizer call."""
        split = [_split_trailing_space(c, x) if c else (c, x) for c, x in pairs]
        contexts = [c for c, _ in split if c]
        wholes = [c + x if c else x for c, x in split]
        table = self._encode_many(contexts + wholes)
        out = []
        for context, whole in zip((c for c, _ in split), wholes, strict=True):
            if not context:
                out.append(([self.prefix_token_id], table[whole]))
                continue
            context_ids = table[context]
            out.append((context_ids, table[whole][len(context_ids) :]))
        return out

    # --- scoring --------------------------------------------------------------------------------------

    def loglikelihoods(
        self, pairs: Sequence[Pair], progress: Callable[[int], None] | None = None
    ) -> list[LogLikelihood]:
        """Summed log-likelihood of each continuation given its context."""
        return self.loglikelihoods_tokens(self.encode(pairs), progress)

    def loglikelihoods_tokens(
        self, encoded: Sequence[TokenPair], progress: Callable[[int], None] | None = None
    ) -> list[LogLikelihood]:
        """As ``loglikelihoods``, for pairs already tokenised (``progress`` gets the requests done per batch)."""
        results: list[LogLikelihood | None] = [None] * len(encoded)
        rows = self._rows(encoded, results)
        rows.sort(key=lambda r: (-r.length, r.context))
        for batch in self._batches(rows):
            for request_id, value in self._forward(batch):
                results[request_id] = value
            if progress is not None:
                progress(sum(len(r.request_ids) for r in batch))
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def _rows(self, encoded: Sequence[TokenPair], results: list[LogLikelihood | None]) -> list[_Row]:
        """One row per distinct context, holding its continuations. Past ``row_answer_tokens`` of answers
        (thousands of answers after the same bare cue) a new row with the same context begins: attention in a
        row costs its length squared, while each answer needs only the context and itself."""
        open_rows: dict[tuple[int, ...], _Row] = {}
        rows: list[_Row] = []
        for request_id, (context, continuation) in enumerate(encoded):
            if not continuation:  # nothing to score (lm-eval would refuse); log-likelihood of nothing is 0
                results[request_id] = LogLikelihood(0.0, 0, True)
                continue
            if len(continuation) > self.max_length:
                continuation = continuation[-self.max_length :]
            key = tuple(context)
            row = open_rows.get(key)
            if row is None or row.length + len(continuation) - 1 > len(context) + self.row_answer_tokens:
                row = open_rows[key] = _Row(list(context), [], [])
                rows.append(row)
            row.continuations.append(list(continuation))
            row.request_ids.append(request_id)
        return [self._truncate(row) for row in rows]

    def _truncate(self, row: _Row) -> _Row:
        """Cut the context on the left so the longest continuation fits (lm-eval cuts per request)."""
        keep = self.max_length + 1 - max(len(c) for c in row.continuations)
        if len(row.context) <= keep:
            return row
        return _Row(row.context[-max(keep, 1) :], row.continuations, row.request_ids)

    def _batches(self, rows: list[_Row]) -> list[list[_Row]]:
        batches: list[list[_Row]] = []
        for row in rows:  # sorted longest first: the first row of a batch sets its padded width
            if batches and (len(batches[-1]) + 1) * batches[-1][0].length <= self.batch_tokens:
                batches[-1].append(row)
            else:
                batches.append([row])
        return batches

    @torch.inference_mode()
    def _forward(self, batch: list[_Row]) -> list[tuple[int, LogLikelihood]]:
        width = batch[0].length
        n_rows = len(batch)
        ids = torch.full((n_rows, width), self.pad_token_id, dtype=torch.long)
        positions = torch.zeros((n_rows, width), dtype=torch.long)
        allowed = torch.zeros((n_rows, width, width), dtype=torch.bool)
        gather_rows: list[int] = []
        gather_cols: list[int] = []
        targets: list[int] = []
        owners: list[int] = []  # request id of each gathered position
        for b, row in enumerate(batch):
            n_ctx = len(row.context)
            ids[b, :n_ctx] = torch.tensor(row.context)
            positions[b, :n_ctx] = torch.arange(n_ctx)
            allowed[b, :n_ctx, :n_ctx] = torch.ones(n_ctx, n_ctx, dtype=torch.bool).tril()
            start = n_ctx
            for continuation, request_id in zip(row.continuations, row.request_ids, strict=True):
                m = len(continuation) - 1  # the last token is predicted, never fed
                end = start + m
                if m:
                    ids[b, start:end] = torch.tensor(continuation[:-1])
                    positions[b, start:end] = torch.arange(n_ctx, n_ctx + m)
                    allowed[b, start:end, :n_ctx] = True
                    allowed[b, start:end, start:end] = torch.ones(m, m, dtype=torch.bool).tril()
                # token j of the continuation is predicted at the context's last position (j = 0) or at
                # the position holding token j - 1
                gather_rows += [b] * (m + 1)
                gather_cols += [n_ctx - 1, *range(start, end)]
                targets += continuation
                owners += [request_id] * (m + 1)
                start = end
            pad = torch.arange(start, width)
            allowed[b, pad, pad] = True  # padding attends to itself only (a fully masked row gives NaN)
        if n_rows == 1 and len(batch[0].context) >= self.two_phase_from:
            hidden = self._hidden_two_phase(ids, positions, allowed, len(batch[0].context))
        else:
            hidden = self._hidden_states(ids, positions, allowed, positions)
        selected = hidden[torch.tensor(gather_rows), torch.tensor(gather_cols)]
        logits = self.model.get_output_embeddings()(selected).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        target = torch.tensor(targets)
        token_logprobs = torch.log_softmax(logits, dim=-1).gather(1, target[:, None])[:, 0]
        token_greedy = logits.argmax(dim=-1) == target
        return self._sum_by_owner(owners, token_logprobs, token_greedy)

    def _hidden_states(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        allowed: torch.Tensor,
        key_positions: torch.Tensor,
        cache: Any = None,
    ) -> torch.Tensor:
        """Final hidden states of the decoder body under a custom mask (no LM head).

        ``allowed`` is (batch, query, key); with a ``cache`` the keys are the cached tokens, then the queries.
        """
        device = self.model.device
        dtype = self.model.get_input_embeddings().weight.dtype
        mask: Any = self._additive(allowed, dtype).to(device)
        if self.sliding_window:  # models that mix sliding-window and full attention want one mask per kind
            near = (positions[:, :, None] - key_positions[:, None, :]) < self.sliding_window
            mask = {"full_attention": mask, "sliding_attention": self._additive(allowed & near, dtype).to(device)}
        out = self.model.get_decoder()(
            input_ids=ids.to(device),
            attention_mask=mask,
            position_ids=positions.to(device),
            past_key_values=cache,
            use_cache=cache is not None,
        )
        return out.last_hidden_state

    def _hidden_two_phase(
        self, ids: torch.Tensor, positions: torch.Tensor, allowed: torch.Tensor, n_ctx: int
    ) -> torch.Tensor:
        """One long row in two calls: the context alone under the model's own causal attention (whose kernel
        skips the masked half, which a custom mask cannot), then the continuations over its cached keys."""
        from transformers import DynamicCache

        cache = DynamicCache()  # full-length layers even for sliding-window models: our mask does the windowing
        device = self.model.device
        context = self.model.get_decoder()(input_ids=ids[:, :n_ctx].to(device), past_key_values=cache, use_cache=True)
        if ids.shape[1] == n_ctx:  # only one-token continuations: nothing more to feed
            return context.last_hidden_state
        rest = self._hidden_states(ids[:, n_ctx:], positions[:, n_ctx:], allowed[:, n_ctx:], positions, cache)
        return torch.cat([context.last_hidden_state, rest], dim=1)

    @staticmethod
    def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Boolean (batch, query, key) → additive float mask (batch, 1, query, key), as eager and SDPA take."""
        mask = torch.zeros(allowed.shape, dtype=dtype)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        return mask[:, None]

    @staticmethod
    def _sum_by_owner(
        owners: list[int], token_logprobs: torch.Tensor, token_greedy: torch.Tensor
    ) -> list[tuple[int, LogLikelihood]]:
        out = []
        values = token_logprobs.double().cpu().tolist()
        greedy = token_greedy.cpu().tolist()
        start = 0
        while start < len(owners):
            end = start
            while end < len(owners) and owners[end] == owners[start]:
                end += 1
            logprob = sum(values[start:end])
            out.append((owners[start], LogLikelihood(logprob, end - start, all(greedy[start:end]))))
            start = end
        return out
