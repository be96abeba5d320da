"""Sampling: the one path from prompts to completions, for training rollouts, evaluations and recipes.

    ro = rollout(student, rows, n=4, max_new_tokens=64, seed=step_seed)
    for mb in micro_batches(ro, size=16): ...     # mb.ids, mb.mask, mb.start, mb.tokens, mb.response_mask
    for first, s in sample_batches(lm, prompts, n=8, max_new_tokens=64, prompts_per_call=8, seed=0): ...
    evaluate(lm, rows, verifier, max_new_tokens=64)  # greedy accuracy

A ``Sampler`` is the seam where served engines plug in: it samples n completions per prompt with their token
ids and per-token log-probs, and takes the trainer's new weights. ``LocalSampler`` (the model's own decode
loop, ``LocalLM.sample``) is one backend; a vLLM / SGLang client implements the same two calls. Anything that
samples takes either a ``LocalLM`` or a ``Sampler``.

Micro-batches group rollouts of similar length and drop columns that are padding in every row of the batch,
so the training forward pass does not spend time on padding the sampler needed.

Prompt rows may carry images (``lyceum.train.image_prompts``): the sampler is handed ``prompt_input(row)``
(the text of a text-only row, exactly as before; a dict with the images otherwise), a ``VisionLM`` returns
``VisionSamples`` that keep each prompt's processed images, and every micro-batch carries its rows' images
(``MicroBatch.images``) so the training forward pass, the teacher and the reference model see the pixels
the sampler saw (``MicroBatch.body_inputs()``). A text-only model given rows with images is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from lyceum.errors import UserError
from lyceum.models.local import LocalLM, Samples


@runtime_checkable
class Sampler(Protocol):
    """A rollout backend."""

    def sample(self, prompts: Sequence[Any], *, n: int, max_new_tokens: int, temperature: float = 1.0,
               top_p: float = 1.0, seed: int | None = None) -> Samples:
        """``n`` completions per prompt (prompt-major rows) with token ids, per-token log-probs under the
        distribution each token was drawn from, finish reasons and texts. ``temperature=0`` is greedy."""
        ...

    def push_weights(self, model: Any) -> None:
        """Serve the trainer's current weights from now on (a no-op for a sampler that shares them)."""
        ...


@dataclass
class LocalSampler:
    """Samples with the trained model itself (its own decode loop), so there are never weights to push."""

    lm: LocalLM
    autocast: Callable[[], Any] = field(default=nullcontext)
    ignore_eos: bool = False  # no stop ids: every rollout runs to max_new_tokens (fixed-length measurements)

    def sample(self, prompts: Sequence[Any], *, n: int, max_new_tokens: int, temperature: float = 1.0,
               top_p: float = 1.0, seed: int | None = None) -> Samples:
        with self.autocast():
            return self.lm.sample(list(prompts), max_new_tokens, temperature=temperature, top_p=top_p, n=n,
                                  seed=seed, stop_ids=[] if self.ignore_eos else None)

    def push_weights(self, model: Any) -> None:
        pass


def as_sampler(model: LocalLM | Sampler, autocast: Callable[[], Any] | None = None, *,
               ignore_eos: bool = False) -> Sampler:
    """A ``Sampler`` for ``model``: a ``LocalLM`` gets the local backend, a sampler is returned as it is."""
    if isinstance(model, LocalLM):
        return LocalSampler(model, autocast or nullcontext, ignore_eos=ignore_eos)
    if not isinstance(model, Sampler):
        raise TypeError(f"expected a LocalLM or a Sampler, got {type(model).__name__}")
    return model


def sample_batches(model: LocalLM | Sampler, prompts: Sequence[Any], *, n: int = 1, max_new_tokens: int,
                   prompts_per_call: int, temperature: float = 1.0, top_p: float = 1.0, seed: int | None = 0,
                   seed_by: str = "chunk", desc: str = "",
                   autocast: Callable[[], Any] | None = None) -> Iterator[tuple[int, Samples]]:
    """``n`` completions for each prompt, ``prompts_per_call`` prompts at a time: yields (index of the chunk's
    first prompt, its ``Samples``). Chunk i draws with seed ``seed + i`` (``seed_by="chunk"``) or ``seed`` plus
    the index of its first prompt (``seed_by="row"``); ``seed=None`` uses the global RNG. ``desc`` shows a
    progress bar."""
    from lyceum.runs import progress

    sampler = as_sampler(model, autocast)
    size = max(1, int(prompts_per_call))
    starts = list(range(0, len(prompts), size))
    for c, a in enumerate(progress(starts, desc=desc) if desc else starts):
        chunk_seed = None if seed is None else seed + (c if seed_by == "chunk" else a)
        yield a, sampler.sample(prompts[a: a + size], n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                top_p=top_p, seed=chunk_seed)


@dataclass
class Rollouts:
    """A step's rollouts: ``samples`` row i answers ``rows[samples.prompt_index[i]]``."""

    rows: list[dict]
    samples: Samples
    rewards: torch.Tensor | None = None  # [N] verifier rewards, when a verifier is configured
    policy_version: int | None = None  # optimizer steps in the weights that sampled them (served samplers)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def texts(self) -> list[str]:
        return self.samples.texts

    def row_of(self, i: int) -> dict:
        return self.rows[int(self.samples.prompt_index[i])]

    @property
    def tokens(self) -> int:
        return int(self.samples.mask.sum())


@dataclass
class MicroBatch:
    """Some rollouts as one padded batch: prompt in ``ids[:, :start]`` (left-padded), response after it."""

    index: torch.Tensor  # [b] which rollouts of the step
    ids: torch.Tensor  # [b, T]
    mask: torch.Tensor  # [b, T] attention mask
    start: int  # first response column
    old_logprobs: torch.Tensor | None = None  # [b, L] log-probs of the tokens under the sampling distribution
    group: torch.Tensor | None = None  # [b] prompt index: rollouts of one prompt form a group
    # its share of the step's loss units over every process, per unit ("token", "sequence"); set by the engine
    share: dict[str, float] | None = None
    images: list | None = None  # [b] each row's PromptImages (None: a text row); None when no row has images

    def to(self, device: torch.device) -> MicroBatch:
        move = lambda t: None if t is None else t.to(device)
        return MicroBatch(self.index, self.ids.to(device), self.mask.to(device), self.start,
                          move(self.old_logprobs), move(self.group), share=self.share, images=self.images)

    def body_inputs(self) -> dict[str, Any]:
        """Keyword arguments of ``hidden_states`` besides ids and mask: the rows' images when there are any
        (nothing for text rollouts, so a text model's call is unchanged)."""
        return {} if self.images is None else {"images": self.images}

    @property
    def tokens(self) -> torch.Tensor:
        """The response tokens ``[b, L]``; position t of a model's shifted outputs predicts ``tokens[:, t]``."""
        return self.ids[:, self.start:]

    @property
    def response_mask(self) -> torch.Tensor:
        return self.mask[:, self.start:]

    @property
    def n_tokens(self) -> int:
        return int(self.response_mask.sum())


def sampler_inputs(model: LocalLM | Sampler, rows: Sequence[dict]) -> list[Any]:
    """What the sampler is handed for each row: its text, or (rows with images) the text with the images.

    A model that cannot take images is refused in one sentence rather than fed the bare text, which would
    train it on problems whose diagrams it never saw.
    """
    from lyceum.train.image_prompts import prompt_input

    if takes_images(model):
        return [prompt_input(r) for r in rows]
    check_images_fit(model, rows)
    return [r["prompt"] for r in rows]  # exactly what a text model has always been given


def check_images_fit(model: Any, rows: Sequence[dict]) -> None:
    """Refuse rows with images for a model that cannot take them (one sentence, before any sampling)."""
    from lyceum.train.image_prompts import row_images

    if takes_images(model):
        return
    n = len({id(r) for r in rows if row_images(r)})
    if n:
        name = type(model.lm if isinstance(model, LocalSampler) else model).__name__
        raise UserError(f"{n} of the prompt rows carry images, but the model ({name}) takes no images; use a "
                        "local vision-language model folder (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) or text-only rows")


def takes_images(model: Any) -> bool:
    """Whether ``model`` (a LocalLM or a sampler) samples from prompts with images.

    A served sampler must say so itself (``takes_images = True``): one that encodes prompts with a local
    ``VisionLM`` but sends only token ids would give the server image placeholders without their pixels.
    """
    from lyceum.models.vlm import VisionLM

    if isinstance(model, (LocalLM, LocalSampler)):
        return isinstance(getattr(model, "lm", model), VisionLM)
    return bool(getattr(model, "takes_images", False))


def rollout(student: LocalLM | Sampler, rows: list[dict], *, n: int, max_new_tokens: int, temperature: float = 1.0,
            top_p: float = 1.0, seed: int | None = None, autocast: Callable[[], Any] | None = None) -> Rollouts:
    """``n`` rollouts for each prompt row, in one call to the sampler."""
    samples = as_sampler(student, autocast).sample(sampler_inputs(student, rows), n=n, max_new_tokens=max_new_tokens,
                                                   temperature=temperature, top_p=top_p, seed=seed)
    return Rollouts(rows, samples)


class StepRollouts:
    """Each training step's rollouts, from the step's prompts (``schedule``) and the sampler.

    With ``ahead`` (a served sampler allowed one step of staleness), the next step's batch is generated in a
    background thread while the current one trains: the prompts, group size and length are taken from the
    schedule in the caller's thread when the generation starts (so a curriculum's advance reaches the batch
    after), the sampler's ``policy_version`` is read then too, and the thread only samples.

    With ``ahead`` and a sampler that shares the trainer's weights (``LocalSampler``), the next step's batch is
    decoded in the caller's thread right after this step's, before this step's update (decoding in a thread
    would read weights the optimizer is changing): rollouts trained at step s were drawn by the weights after
    s - 1 updates, one step stale, and ``policy_version`` counts the updates in the weights that drew them.
    What this buys is time elsewhere: ``on_batch(rollouts)`` is called as soon as a batch is drawn (a served
    teacher starts scoring it, ``ServedTeacherFeedback.prefetch``), so the teacher scores batch s + 1 while
    the trainer trains batch s and decodes batch s + 2.
    """

    def __init__(self, sampler: Sampler, schedule, *, steps: int, seed_of: Callable[[int], int | None],
                 temperature: float = 1.0, top_p: float = 1.0, ahead: bool = False,
                 on_batch: Callable[[Rollouts], None] | None = None):
        self.sampler, self.schedule, self.steps, self.seed_of = sampler, schedule, steps, seed_of
        self.temperature, self.top_p, self.ahead, self.on_batch = temperature, top_p, ahead, on_batch
        self.inline = isinstance(sampler, LocalSampler)  # shares the trainer's weights: decode ahead in this thread
        self._pending: tuple[int, Any] | None = None
        self._pool = None

    def _job(self, step: int, version: int | None = None) -> Callable[[], Rollouts]:
        rows = self.schedule.next_batch(step)
        n, length = self.schedule.group_size(step), self.schedule.max_new_tokens(step)
        version = getattr(self.sampler, "policy_version", version)

        def run() -> Rollouts:
            ro = rollout(self.sampler, rows, n=n, max_new_tokens=length, temperature=self.temperature,
                         top_p=self.top_p, seed=self.seed_of(step))
            ro.policy_version = version
            if self.on_batch is not None:
                self.on_batch(ro)
            return ro

        return run

    def get(self, step: int) -> Rollouts:
        """This step's rollouts (waiting for them if they are being generated); starts the next step's when
        ``ahead``. ``step`` optimizer updates have been applied to the trainer's weights when it is called."""
        # in-process look-ahead: the batches carry the number of updates in the weights that decoded them
        version = step if self.ahead and self.inline else None
        if self._pending is not None and self._pending[0] == step:
            ro = self._pending[1].result()
        else:
            self.close()
            ro = self._job(step, version)()
        self._pending = None
        if self.ahead and self.inline and step + 1 < self.steps:
            from concurrent.futures import Future

            done: Future = Future()
            done.set_result(self._job(step + 1, version)())
            self._pending = (step + 1, done)
        elif self.ahead and step + 1 < self.steps:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollouts")
            self._pending = (step + 1, self._pool.submit(self._job(step + 1)))
        return ro

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Wait for a generation in flight (its batch is dropped) and stop the thread."""
        if self._pending is not None:
            self._pending[1].exception()  # waits; an error of a batch nobody will train on is not raised
            self._pending = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def evaluate(model: LocalLM | Sampler, rows: list[dict], verifier, *, max_new_tokens: int, batch_size: int = 64,
             autocast: Callable[[], Any] | None = None) -> dict[str, float]:
    """Greedy accuracy (mean verifier reward) of ``model`` on ``rows``, with mean response length and stop rate."""
    from lyceum.train.verifiers import reward

    correct, lengths, stops = [], [], []
    for a, s in sample_batches(model, sampler_inputs(model, rows), n=1, max_new_tokens=max_new_tokens,
                               prompts_per_call=batch_size, temperature=0.0, seed=None, autocast=autocast):
        # float32, like the rewards of training rollouts (feedback.verifier_rewards)
        correct += torch.tensor([reward(verifier, rows[a + i], text) for i, text in enumerate(s.texts)],
                                dtype=torch.float32).tolist()
        lengths += s.lengths.tolist()
        stops += [r == "stop" for r in s.finish_reasons]
    n = max(len(rows), 1)
    return {"accuracy": sum(correct) / n, "response_length": sum(lengths) / n, "stop_rate": sum(stops) / n}


def micro_batch_order(ro: Rollouts) -> torch.Tensor:
    """The order ``micro_batches`` takes the rollouts in (by prompt, then response length), so work prepared
    ahead (a served teacher's scores) can be ready in the order it is needed."""
    s = ro.samples
    return torch.argsort(s.prompt_mask.sum(-1) * 100_000 + s.mask.sum(-1).long(), stable=True)


def micro_batches(ro: Rollouts, size: int) -> Iterator[MicroBatch]:
    """Length-sorted micro-batches of at most ``size`` rollouts, each trimmed of all-padding columns."""
    s = ro.samples
    prompt_len = s.prompt_mask.sum(-1)
    resp_len = s.mask.sum(-1).long()
    order = micro_batch_order(ro)
    P = s.prompt_ids.shape[1]
    for a in range(0, len(order), size):
        idx = order[a: a + size]
        left = P - int(prompt_len[idx].max())
        right = int(resp_len[idx].max())
        ids = torch.cat([s.prompt_ids[idx, left:], s.tokens[idx, :right]], 1)
        mask = torch.cat([s.prompt_mask[idx, left:], s.mask[idx, :right].long()], 1)
        images = s.row_images(idx) if hasattr(s, "row_images") and any(im is not None for im in s.images) else None
        yield MicroBatch(idx, ids, mask, P - left, s.logprobs[idx, :right], s.prompt_index[idx], images=images)
