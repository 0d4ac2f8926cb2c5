"""An lm-eval language model that scores an in-memory LitGPT model.

Multiple-choice tasks such as MMLU and HellaSwag only ask for ``loglikelihood``, so the
fine-tuned model is evaluated where it was trained, without a conversion to the Hugging
Face format.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from lm_eval.api.model import LM
import torch

from .training import PrecisionSettings


class LitGPTEvalModel(LM):
    """lm-eval ``LM`` that computes log-likelihoods with a ``litgpt.GPT`` model.

    Requests whose model inputs are identical (the four answer letters of an MMLU
    question, for example) share one forward pass. Inputs longer than the model's
    ``max_seq_length`` keep their last tokens, as lm-eval's Hugging Face model does.

    Args:
        model: A ``litgpt.GPT`` or ``litgpt.lora.GPT``; it is put in evaluation mode.
        tokenizer: The model's ``litgpt.tokenizer.Tokenizer``.
        device: The model's device.
        precision: The autocast setting of the forward passes.
        batch_size: Sequences per forward pass. Default 8.

    Example:
        >>> import lm_eval
        >>> from optuna_fractal_objectives.lm_eval_model import LitGPTEvalModel
        >>> lm = LitGPTEvalModel(model, tokenizer, device, precision)  # doctest: +SKIP
        >>> lm_eval.evaluator.evaluate(lm=lm, task_dict=tasks)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        device: torch.device,
        precision: PrecisionSettings,
        batch_size: int = 8,
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self._device = device
        self.precision = precision
        self.batch_size = batch_size
        self.max_length = int(model.max_seq_length)
        if tokenizer.use_bos and tokenizer.bos_id is not None:
            self._prefix: list[int] = [tokenizer.bos_id]
        else:
            self._prefix = []
        # lm-eval scores an empty context after the end-of-text token when there is no BOS.
        self._empty_context_prefix = self._prefix or (
            [tokenizer.eos_id] if tokenizer.eos_id is not None else []
        )

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        """Return ``(log P(continuation | context), is greedy)`` for each request."""
        # Each model input maps to the requests that read their scores from its logits.
        by_input: dict[tuple[int, ...], list[tuple[int, int]]] = defaultdict(list)
        continuations: list[list[int]] = []
        for index, request in enumerate(requests):
            context, continuation = request.args
            context_ids, continuation_ids = self._encode_pair(context, continuation)
            tokens = (context_ids + continuation_ids)[-(self.max_length + 1) :]
            by_input[tuple(tokens[:-1])].append((index, len(continuation_ids)))
            continuations.append(continuation_ids)

        results: list[tuple[float, bool] | None] = [None] * len(requests)
        inputs = sorted(by_input, key=len, reverse=True)
        self.model.eval()
        for start in range(0, len(inputs), self.batch_size):
            batch = inputs[start : start + self.batch_size]
            logits = self._forward(batch)
            for row, model_input in enumerate(batch):
                length = len(model_input)
                for index, n_continuation in by_input[model_input]:
                    # A continuation longer than the model input keeps its last tokens.
                    n_scored = min(n_continuation, length)
                    rows = logits[row, length - n_scored : length].float()
                    log_probs = torch.log_softmax(rows, dim=-1)
                    target = torch.tensor(
                        continuations[index][len(continuations[index]) - n_scored :],
                        device=rows.device,
                    )
                    score = log_probs.gather(-1, target.unsqueeze(-1)).sum().item()
                    greedy = bool(torch.equal(log_probs.argmax(dim=-1), target))
                    results[index] = (score, greedy)
                    self.cache_hook.add_partial(
                        "loglikelihood", requests[index].args, (score, greedy)
                    )
        return [result for result in results if result is not None]

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        """Not implemented: perplexity tasks need it, multiple-choice tasks do not."""
        raise NotImplementedError(
            "LitGPTEvalModel implements only loglikelihood; use multiple-choice tasks such "
            "as mmlu or hellaswag, or the validation loss (metric: val_loss)."
        )

    def generate_until(self, requests: list[Any]) -> list[str]:
        """Not implemented: generation tasks need it, multiple-choice tasks do not."""
        raise NotImplementedError(
            "LitGPTEvalModel implements only loglikelihood; use multiple-choice tasks such "
            "as mmlu or hellaswag, or the validation loss (metric: val_loss)."
        )

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, bos=False).tolist()

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        # Trailing spaces of the context belong to the continuation, and the continuation's
        # tokens are read off the tokenization of the whole string, so that a token that
        # spans the boundary is scored as the model would see it (lm-eval's HFLM does the
        # same).
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        if not context:
            return list(self._empty_context_prefix), self._encode(continuation)
        whole = self._encode(context + continuation)
        context_ids = self._encode(context)
        return self._prefix + context_ids, whole[len(context_ids) :]

    @torch.inference_mode()
    def _forward(self, batch: list[tuple[int, ...]]) -> torch.Tensor:
        width = max(len(tokens) for tokens in batch)
        # Right padding is safe: causal attention keeps pad tokens out of earlier positions.
        padded = torch.zeros((len(batch), width), dtype=torch.long)
        for row, tokens in enumerate(batch):
            padded[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        with self.precision.autocast(self.device):
            return self.model(padded.to(self.device))
