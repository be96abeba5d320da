"""Vision-language models (image-text-to-text): load one from a folder or build a tiny one, then sample and score
with images in the prompts.

    vlm = load_vlm("models/qwen2.5-vl-3b")                    # config + weights + tokenizer + image processor
    vlm = build_tiny_vlm("qwen2_vl", seed=0)                  # random init, char tokenizer with image tokens
    s = vlm.sample([{"prompt": "sum?", "images": ["a.png"]}], max_new_tokens=32, n=4, seed=0)
    ids, mask, start = s.sequences()
    sc = vlm.score(ids, mask, start=start, images=s.row_images(), topk=16)   # same shapes as LocalLM.score
    freeze_vision(vlm.model)                                  # --freeze-vision: the vision encoder stops training

``VisionLM`` is a ``LocalLM`` (same ``sample``/``score``/``hidden_states``/``logits``/``save``), so code written
for text models runs on it; text-only prompts behave exactly as in ``LocalLM``. What images add:

- a prompt may carry images: ``{"prompt": text, "images": [...]}`` (an ``<image>`` in the text marks where each
  image goes, else they come first), ``{"messages": [...]}`` with chat image parts, or a ``VisionPrompt``;
- each image becomes ``prod(image_grid_thw) / merge_size**2`` placeholder tokens in the prompt (the processor's
  rule); the image processor's patches travel with the prompt as ``PromptImages`` and with samples as
  ``VisionSamples.images``, so scoring and training forward passes see the same pixels as sampling;
- positions are the model's multimodal (3-D) rotary positions from ``get_rope_index``, computed for a whole
  left-padded batch; a decoded token continues at the row's largest position + 1, which is what the model
  would compute for the full sequence, so a sampled token's log-prob equals its score.

Loading works without torchvision: ``AutoProcessor`` is used when it loads (its tokenizer and image processor),
otherwise ``AutoTokenizer`` + ``AutoImageProcessor(use_fast=False)`` (the PIL class), which on transformers 5
is the only way a Qwen2-VL folder loads beside a CPU torch build whose torchvision does not import.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lyceum.errors import UserError
from lyceum.models.local import (
    LocalLM,
    Samples,
    Scores,
    check_sampling,
    quiet_transformers,
    resolve_device,
    resolve_dtype,
)

# Placeholder tokens of the Qwen-VL family: an image is <|vision_start|> <|image_pad|> x n <|vision_end|>.
VISION_START, IMAGE_PAD, VISION_END, VIDEO_PAD = "<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>"
VISION_TOKENS = (VISION_START, IMAGE_PAD, VISION_END, VIDEO_PAD)
# Marks where an image goes in a plain-text prompt: "Look at <image> and add." (no marker: images come first)
IMAGE_MARKER = "<image>"

# model_type -> (config class, model class) of the tiny architectures ``build_tiny_vlm`` makes
TINY_ARCHS = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


# --------------------------------------------------------------------------------------------------- records


@dataclass
class PromptImages:
    """One prompt's images after the image processor: flat patches and one (t, h, w) patch grid per image."""

    pixel_values: torch.Tensor  # [patches, C * temporal_patch * patch * patch] float32
    grid_thw: torch.Tensor  # [images, 3] long

    def __len__(self) -> int:
        return int(self.grid_thw.shape[0])

    def tokens(self, merge_size: int) -> int:
        """How many placeholder tokens these images take in the prompt."""
        return int((self.grid_thw.prod(-1) // merge_size**2).sum())


@dataclass
class VisionPrompt:
    """A prompt ready for the model: token ids with each image's placeholders expanded, and its images."""

    ids: list[int]
    images: PromptImages | None = None


@dataclass
class VisionSamples(Samples):
    """``Samples`` plus the images of each prompt; ``images[prompt_index[i]]`` belongs to row ``i``."""

    images: list[PromptImages | None] = field(default_factory=list)

    def row_images(self, rows: torch.Tensor | Sequence[int] | None = None) -> list[PromptImages | None]:
        """The images of each sample row (all rows, or ``rows``), in row order: pass them to ``score``."""
        index = self.prompt_index if rows is None else self.prompt_index[torch.as_tensor(rows, dtype=torch.long)]
        return [self.images[int(i)] for i in index.tolist()]

    def select(self, rows: torch.Tensor | Sequence[int]) -> VisionSamples:
        s = super().select(rows)
        return VisionSamples(**{f: getattr(s, f) for f in Samples.__dataclass_fields__}, images=self.images)


# --------------------------------------------------------------------------------------------------- images


def open_image(image: Any, base: Path | None = None):
    """A PIL RGB image from a path, a ``file://`` URL, or a PIL image (nothing is fetched over a network)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, dict):  # OpenAI-style {"url": ...} or {"image_url": {"url": ...}}
        image = image.get("url") or (image.get("image_url") or {}).get("url") or image.get("image") or image.get("path")
    if not isinstance(image, (str, Path)):
        raise UserError(f"an image must be a file path or a PIL image, got {type(image).__name__}")
    text = str(image)
    if re.match(r"(?i)^(https?|data):", text):
        raise UserError(f"image {text[:60]!r} is a URL; lyceum reads images from local files only")
    path = Path(text.removeprefix("file://"))
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as e:
        raise UserError(f"{path} is not an image PIL can read ({e})") from e


# --------------------------------------------------------------------------------------------------- model


@dataclass
class VisionLM(LocalLM):
    """An image-text-to-text model, its tokenizer and its image processor on one device."""

    image_processor: Any = None
    chat_template: str | None = None
    # LocalLM.score calls hidden_states(ids, mask); score() parks the rows' images here for that one call
    _scoring_images: Any = field(default=None, init=False, repr=False)

    # ---- ids

    @property
    def text_config(self) -> Any:
        return self.model.config.get_text_config()

    @property
    def image_token_id(self) -> int:
        return int(self.model.config.image_token_id)

    @property
    def merge_size(self) -> int:
        return int(self.model.config.vision_config.spatial_merge_size)

    @property
    def image_token(self) -> str:
        return self.tokenizer.convert_ids_to_tokens(self.image_token_id)

    # ---- prompts

    def image_block(self) -> str:
        """The text one image stands for before expansion (Qwen-VL: start, one pad, end)."""
        cfg = self.model.config
        start = getattr(cfg, "vision_start_token_id", None)
        end = getattr(cfg, "vision_end_token_id", None)
        pieces = [self.tokenizer.convert_ids_to_tokens(int(start)) if start is not None else "", self.image_token,
                  self.tokenizer.convert_ids_to_tokens(int(end)) if end is not None else ""]
        return "".join(pieces)

    def process_images(self, images: Sequence[Any], base: Path | None = None) -> PromptImages | None:
        """Run the image processor on one prompt's images (paths or PIL images)."""
        if not images:
            return None
        if self.image_processor is None:
            raise UserError("this model has no image processor (preprocessor_config.json); it cannot take images")
        pil = [open_image(im, base) for im in images]
        out = self.image_processor(images=pil, return_tensors="pt")
        return PromptImages(out["pixel_values"].float(), out["image_grid_thw"].long())

    def render(self, prompt: Any) -> tuple[str, list[Any], bool]:
        """(text with one image block per image, the images in order, whether the text is chat-templated)."""
        if isinstance(prompt, str):
            return prompt, [], False
        if not isinstance(prompt, dict):
            raise UserError(f"a prompt must be text, token ids, a VisionPrompt or a dict, got {type(prompt).__name__}")
        if "messages" in prompt:
            return self._render_messages(prompt["messages"]) + (self.chat_template is not None,)
        text = prompt.get("prompt")
        if not isinstance(text, str):
            raise UserError("a prompt row needs 'prompt' text or chat 'messages'")
        images = list(prompt.get("images") or [])
        marks = text.count(IMAGE_MARKER)
        if marks and marks != len(images):
            raise UserError(f"the prompt has {marks} {IMAGE_MARKER} marker(s) but {len(images)} image(s)")
        if marks:
            return text.replace(IMAGE_MARKER, self.image_block()), images, False
        return self.image_block() * len(images) + text, images, False

    def _render_messages(self, messages: Any) -> tuple[str, list[Any]]:
        if not isinstance(messages, list) or not messages:
            raise UserError("'messages' must be a non-empty list of {role, content} objects")
        images: list[Any] = []
        chat: list[dict] = []
        for m in messages:
            if not isinstance(m, dict) or "content" not in m:
                raise UserError("every message needs a 'role' and a 'content'")
            content = m["content"]
            if isinstance(content, str):
                chat.append({"role": m.get("role", "user"), "content": content})
                continue
            parts = []
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    parts.append({"type": "text", "text": str(part.get("text", ""))})
                elif kind in ("image", "image_url"):
                    images.append(part.get("image") or part.get("image_url") or part.get("path") or part.get("url"))
                    parts.append({"type": "image"})
                else:
                    raise UserError(f"unknown message part {part!r}; use text, image or image_url parts")
            chat.append({"role": m.get("role", "user"), "content": parts})
        if self.chat_template is not None:
            text = self.tokenizer.apply_chat_template(chat, chat_template=self.chat_template, tokenize=False,
                                                      add_generation_prompt=True)
            return text, images
        # no chat template (tiny models): the parts in order, one message per line, roles dropped
        lines = []
        for m in chat:
            c = m["content"]
            lines.append(c if isinstance(c, str) else "".join(
                p["text"] if p["type"] == "text" else self.image_block() for p in c))
        return "\n".join(lines), images

    def prepare(self, prompts: Sequence[Any], base: Path | None = None) -> list[VisionPrompt]:
        """Token ids (image placeholders expanded) and processed images for each prompt."""
        out = []
        for p in prompts:
            if isinstance(p, VisionPrompt):
                out.append(p)
                continue
            if not isinstance(p, (str, dict)):  # token ids, as LocalLM takes them
                out.append(VisionPrompt(self.encode([p])[0]))
                continue
            text, images, templated = self.render(p)
            pi = self.process_images(images, base)
            block = self.image_token
            if text.count(block) != len(images):
                raise UserError(f"the prompt text holds {text.count(block)} image placeholder(s) {block!r} for "
                                f"{len(images)} image(s); attach images with 'images' or image parts, not as text")
            if pi is not None:  # expand each placeholder to its image's token count, as the processor does
                counts = (pi.grid_thw.prod(-1) // self.merge_size**2).tolist()
                pieces = text.split(block)
                text = pieces[0] + "".join(block * int(n) + rest for n, rest in zip(counts, pieces[1:]))
            if self.tokenizer is None:
                raise UserError("this model has no tokenizer; pass prompts as lists of token ids")
            ids = list(self.tokenizer(text, add_special_tokens=not templated).input_ids)
            want = pi.tokens(self.merge_size) if pi is not None else 0
            if ids.count(self.image_token_id) != want:
                raise UserError(f"the tokenizer did not keep {block!r} as one token ({ids.count(self.image_token_id)} "
                                f"found, {want} expected); the tokenizer and model do not match")
            if not ids:
                raise UserError("a prompt is empty; every prompt needs at least one token")
            out.append(VisionPrompt(ids, pi))
        return out

    # ---- forward pieces

    def vision_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      images: Sequence[PromptImages | None] | None) -> dict[str, Any]:
        """The keyword arguments a forward pass over ``input_ids`` needs: pixels, grids, token types, 3-D positions.

        Row ``i`` holds ``images[i]``; its first image-placeholder tokens are its images' slots (a prompt's text
        can hold no literal placeholder, see ``prepare``). Placeholder ids beyond them (a response that emitted
        one) are text: they are fed as the pad id with the placeholder's embedding put back by ``_literal``.
        """
        B = input_ids.shape[0]
        if images is None:  # no images given at all: refuse ids that hold an image block rather than misread it
            start = getattr(self.model.config, "vision_start_token_id", None)
            if start is not None and ((input_ids[:, :-1] == start) & (input_ids[:, 1:] == self.image_token_id)).any():
                raise ValueError("these ids hold images; pass images= (one entry per row, None for text rows)")
        images = list(images) if images is not None else [None] * B
        if len(images) != B:
            raise ValueError(f"{len(images)} image entries for {B} rows")
        is_pad = (input_ids == self.image_token_id) & attention_mask.bool()
        slots = torch.zeros_like(is_pad)
        for i, im in enumerate(images):
            need = im.tokens(self.merge_size) if im is not None else 0
            where = is_pad[i].nonzero().squeeze(1)
            if where.numel() < need:
                raise ValueError(f"row {i} has {where.numel()} image tokens but its images need {need}")
            slots[i, where[:need]] = True
        model_ids = input_ids.masked_fill(is_pad & ~slots, self.pad_id)
        kw: dict[str, Any] = {"input_ids": model_ids, "attention_mask": attention_mask}
        present = [im for im in images if im is not None and len(im)]
        grid = None
        if present:
            kw["pixel_values"] = torch.cat([im.pixel_values for im in present]).to(self.device)
            grid = torch.cat([im.grid_thw for im in present]).to(self.device)
            kw["image_grid_thw"] = grid
        types = slots.int()
        kw["mm_token_type_ids"] = types
        pos, _ = self.model.model.get_rope_index(input_ids=model_ids, mm_token_type_ids=types, image_grid_thw=grid,
                                                 attention_mask=attention_mask)
        kw["position_ids"] = pos
        kw["_literal"] = is_pad & ~slots
        return kw

    def _forward(self, module: Any, kw: dict[str, Any], **extra: Any) -> Any:
        kw = dict(kw)
        literal = kw.pop("_literal")
        if not literal.any():
            return module(**kw, **extra)
        emb = self.model.get_input_embeddings()
        token = self.image_token_id

        def put_back(_module, _args, out):  # the literal placeholder's own embedding at its positions
            return torch.where(literal[..., None], emb.weight[token].to(out.dtype), out)

        handle = emb.register_forward_hook(put_back)
        try:
            return module(**kw, **extra)
        finally:
            handle.remove()

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      images: Sequence[PromptImages | None] | None = None) -> torch.Tensor:
        """Final hidden states ``[B, T, H]`` of the language model with each row's images, without the LM head."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if images is None:
            images = self._scoring_images
        kw = self.vision_inputs(input_ids, attention_mask, images)
        return self._forward(self.model.model, kw, use_cache=False).last_hidden_state

    # ---- sampling

    def encode(self, prompts: Sequence[Any]) -> list[list[int]]:
        if any(isinstance(p, (dict, VisionPrompt)) for p in prompts):
            return [p.ids for p in self.prepare(prompts)]
        return super().encode(prompts)

    @torch.no_grad()
    def sample(self, prompts: Sequence[Any], max_new_tokens: int = 256, *, temperature: float = 1.0,
               top_p: float = 1.0, n: int = 1, seed: int | None = None, stop_ids: Sequence[int] | None = None,
               image_base: Path | None = None) -> VisionSamples:
        """``LocalLM.sample`` for prompts with images (rows prompt-major); see the module docstring for prompts.

        ``image_base`` resolves relative image paths. Log-probs are those of the distribution each token was
        drawn from (temperature 0: greedy, log-probs at temperature 1). The decode loop is ``LocalLM``'s; only
        the forward passes differ (``_decoder``).
        """
        check_sampling(max_new_tokens, n, temperature, top_p)
        prepared = self.prepare(prompts, image_base)
        return self._sample_loop(prompts, [e.ids for e in prepared], [e.images for e in prepared], max_new_tokens,
                                 temperature=temperature, top_p=top_p, n=n, seed=seed, stop_ids=stop_ids)

    def _decoder(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, images: Any):
        """The prompts with their images (pixels, grids, 3-D positions); a decoded token continues at its row's
        largest position + 1 on all three axes, as ``get_rope_index`` counts."""
        cache_kw = self._cache_kw()

        def prefill(cache):
            kw = self.vision_inputs(prompt_ids, prompt_mask, images)
            next_pos = kw["position_ids"].masked_fill(prompt_mask[None] == 0, -1).amax(dim=(0, 2)) + 1
            out = self._forward(self.model, kw, use_cache=True, logits_to_keep=1, **{cache_kw: cache})
            return out.logits[:, -1], next_pos

        def next_token(tok, attn, pos, cache):
            literal = tok == self.image_token_id  # a sampled placeholder is text, as in vision_inputs
            step = {"input_ids": tok.masked_fill(literal, self.pad_id)[:, None], "attention_mask": attn,
                    "position_ids": pos[None, :, None].expand(3, -1, 1), "_literal": literal[:, None]}
            return self._forward(self.model, step, use_cache=True, **{cache_kw: cache}).logits[:, -1]

        return prefill, next_token

    def _samples(self, fields: dict[str, Any], extra: Any) -> VisionSamples:
        return VisionSamples(**fields, images=extra)

    # ---- scoring

    @torch.no_grad()
    def score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *, start: int = 1,
              topk: int = 0, given_ids: torch.Tensor | None = None,
              chunk_size: int | None = None, images: Sequence[PromptImages | None] | None = None) -> Scores:
        """``LocalLM.score`` with each row's images (``images[i]`` for row ``i``; ``None``: text only)."""
        self._scoring_images = images
        try:
            return super().score(input_ids, attention_mask, start=start, topk=topk, given_ids=given_ids,
                                 chunk_size=chunk_size)
        finally:
            self._scoring_images = None

    # ---- saving

    def save(self, path: str | Path) -> Path:
        path = super().save(path)
        if self.image_processor is not None:
            self.image_processor.save_pretrained(path)
        if self.chat_template is not None and not (path / "chat_template.jinja").exists():
            (path / "chat_template.jinja").write_text(self.chat_template, encoding="utf-8")
        return path


# --------------------------------------------------------------------------------------------------- vision tower


def vision_parameters(model: Any, *, projector: bool = True) -> list[str]:
    """Names of the vision encoder's parameters (``projector=False`` leaves out the merger/projector)."""
    names = []
    for name, _ in model.named_parameters():
        if re.search(r"(^|\.)(visual|vision_tower|vision_model)\.", name):
            if not projector and re.search(r"\.(merger|multi_modal_projector|deepstack_merger_list)\b", name):
                continue
            names.append(name)
    return names


def freeze_vision(model: Any, frozen: bool = True, *, train_projector: bool = True) -> dict[str, int]:
    """``--freeze-vision`` semantics: the vision encoder gets no gradient (``frozen=False``: everything trains).

    The projector (Qwen-VL's merger, which maps vision features into the language model's space) keeps training
    unless ``train_projector=False``. Returns parameter counts: trainable, frozen.
    """
    frozen_names = set(vision_parameters(model, projector=not train_projector)) if frozen else set()
    counts = {"trainable": 0, "frozen": 0}
    for name, p in model.named_parameters():
        p.requires_grad_(name not in frozen_names)
        counts["frozen" if name in frozen_names else "trainable"] += p.numel()
    return counts


def freeze_student_vision(lm: Any, frozen: bool = True) -> dict[str, int] | None:
    """``freeze_vision`` for a loaded model of any kind: a no-op (None) for a text model, else the counts."""
    return freeze_vision(lm.model, frozen) if isinstance(lm, VisionLM) else None


# --------------------------------------------------------------------------------------------------- loading


def check_transformers() -> None:
    """The multimodal positions need transformers 5 (``get_rope_index`` takes ``mm_token_type_ids``)."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    if major < 5:
        raise UserError(f"vision-language models need transformers 5 or newer (installed: "
                        f"{transformers.__version__}); pip install -U 'transformers>=5'")


def is_vision_model(path: str | Path) -> bool:
    """Whether a model folder's config.json describes an image-text-to-text model (it has a vision config)."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and ("vision_config" in data or "image_token_id" in data)


def load_processor_parts(path: str | Path) -> tuple[Any, Any, str | None]:
    """(tokenizer, image processor, chat template) of a model folder: the processor's when ``AutoProcessor``
    loads (torchvision present), else ``AutoTokenizer`` + the PIL image processor."""
    from transformers import AutoImageProcessor, AutoTokenizer

    try:
        from transformers import AutoProcessor

        proc = AutoProcessor.from_pretrained(path, local_files_only=True)
        tok, imp = getattr(proc, "tokenizer", None), getattr(proc, "image_processor", None)
        if tok is not None and imp is not None:
            return tok, imp, getattr(proc, "chat_template", None) or getattr(tok, "chat_template", None)
    except Exception:  # noqa: BLE001, S110 - without torchvision AutoProcessor fails in several ways; the fallback is exact
        pass
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"{path} has no usable tokenizer files (tokenizer.json / tokenizer_config.json)") from e
    imp = None
    if (Path(path) / "preprocessor_config.json").exists():
        try:
            imp = AutoImageProcessor.from_pretrained(path, local_files_only=True, use_fast=False)
        except (OSError, ValueError, KeyError, ImportError) as e:
            raise UserError(f"cannot load the image processor of {path}: {str(e).strip().splitlines()[0]}") from e
    template = getattr(tok, "chat_template", None)
    jinja, as_json = Path(path) / "chat_template.jinja", Path(path) / "chat_template.json"
    if template is None and jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    if template is None and as_json.is_file():  # the processor's file in older Qwen-VL checkpoints
        try:
            template = json.loads(as_json.read_text(encoding="utf-8")).get("chat_template")
        except (OSError, json.JSONDecodeError, AttributeError):
            template = None
    return tok, imp, template


def load_vlm(path: str | Path, device: str | torch.device | None = None,
             dtype: str | torch.dtype | None = None) -> VisionLM:
    """Load an image-text-to-text model with its tokenizer and image processor from a local folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"model directory not found: {path}")
    if not path.is_dir():
        raise UserError(f"{path} is a file; give the directory that holds the model's config.json")
    if not (path / "config.json").exists():
        raise UserError(f"{path} is not a Hugging Face model directory (no config.json)")
    check_transformers()
    from transformers import AutoModelForImageTextToText

    quiet_transformers()
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    try:
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dt, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load an image-text-to-text model from {path}: {first}") from e
    if not hasattr(getattr(model, "model", None), "get_rope_index"):
        raise UserError(f"{path}: {type(model).__name__} is not a Qwen-VL-style model (no multimodal rotary "
                        "positions); lyceum supports Qwen2-VL, Qwen2.5-VL and Qwen3-VL")
    tok, imp, template = load_processor_parts(path)
    tok.padding_side = "left"
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return VisionLM(model.to(dev).eval(), tok, dev, image_processor=imp, chat_template=template)


# --------------------------------------------------------------------------------------------------- tiny models


# Digits, lower-case letters and the punctuation of short arithmetic and physics prompts: enough for tiny test
# models (the lab passes its own alphabet; models/ must not import the lab).
TINY_ALPHABET = "0123456789+-*/=#|:,.?()\n abcdefghijklmnopqrstuvwxyzQA"


def vision_char_tokenizer(alphabet: str | list[str]):
    """The lab's character tokenizer plus the four Qwen-VL vision tokens (as special tokens, after the alphabet)."""
    from lyceum.models.tokenizers import char_tokenizer

    tok = char_tokenizer(alphabet)
    tok.add_special_tokens({"additional_special_tokens": list(VISION_TOKENS)})
    return tok


def tiny_image_processor(*, patch_size: int = 4, merge_size: int = 2, temporal_patch_size: int = 2,
                         min_pixels: int | None = None, max_pixels: int = 64 * 64):
    """A PIL Qwen2-VL image processor for tiny models: small patches, so a 64 x 64 image is 64 tokens at most."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    factor = patch_size * merge_size
    return Qwen2VLImageProcessorPil(patch_size=patch_size, merge_size=merge_size,
                                    temporal_patch_size=temporal_patch_size,
                                    min_pixels=min_pixels or factor * factor, max_pixels=max_pixels)


def build_tiny_vlm(arch: str = "qwen2_vl", *, tokenizer: Any = None, alphabet: str | None = None,
                   hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int | None = None,
                   intermediate: int | None = None, vision_hidden: int = 32, vision_layers: int = 1,
                   vision_heads: int = 2, patch_size: int = 4, merge_size: int = 2, max_pixels: int = 64 * 64,
                   max_positions: int = 2048, seed: int = 0, device: str | torch.device | None = "cpu",
                   dtype: str | torch.dtype | None = None) -> VisionLM:
    """A randomly initialised Qwen2-VL, Qwen2.5-VL or Qwen3-VL with a local tokenizer and image processor.

    The tokenizer is ``vision_char_tokenizer(alphabet)`` (default: ``TINY_ALPHABET``) unless one is given; it
    must hold the Qwen-VL vision tokens. The same arguments and seed give the same weights.
    """
    if arch not in TINY_ARCHS:
        raise UserError(f"unknown tiny vision architecture {arch!r}; use one of {', '.join(TINY_ARCHS)}")
    if hidden % heads or vision_hidden % vision_heads:
        raise UserError("hidden sizes must be divisible by their numbers of heads")
    check_transformers()
    import transformers

    if tokenizer is None:
        tokenizer = vision_char_tokenizer(alphabet or TINY_ALPHABET)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    if any(i is None or i == tokenizer.unk_token_id for i in ids.values()):
        raise UserError(f"the tokenizer needs the vision tokens {', '.join(VISION_TOKENS)}")
    head_dim = hidden // heads
    half = head_dim // 2
    text = {"vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": intermediate or 4 * hidden,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads or heads,
            "max_position_embeddings": max_positions, "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    # the multimodal rotary embedding splits each head's frequencies into (temporal, height, width) sections
    sections = [half - 2 * (half // 3), half // 3, half // 3]
    common_vision = {"in_channels": 3, "patch_size": patch_size, "spatial_merge_size": merge_size,
                     "temporal_patch_size": 2}
    if arch == "qwen2_vl":
        cfg_cls, model_cls = transformers.Qwen2VLConfig, transformers.Qwen2VLForConditionalGeneration
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": sections}
        vision = dict(depth=vision_layers, embed_dim=vision_hidden, hidden_size=hidden, num_heads=vision_heads,
                      mlp_ratio=2, **common_vision)
    elif arch == "qwen2_5_vl":
        cfg_cls, model_cls = transformers.Qwen2_5_VLConfig, transformers.Qwen2_5_VLForConditionalGeneration
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": sections}
        vision = dict(depth=vision_layers, hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                      num_heads=vision_heads, out_hidden_size=hidden, window_size=patch_size * merge_size * 4,
                      fullatt_block_indexes=[vision_layers - 1], **common_vision)
    else:
        cfg_cls, model_cls = transformers.Qwen3VLConfig, transformers.Qwen3VLForConditionalGeneration
        text["head_dim"] = head_dim
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": sections,
                                   "mrope_interleaved": True}
        grid = max(2, int(max_pixels**0.5) // patch_size)
        vision = dict(depth=vision_layers, hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                      num_heads=vision_heads, out_hidden_size=hidden, num_position_embeddings=grid * grid,
                      deepstack_visual_indexes=[0], **common_vision)
    config = cfg_cls(text_config=text, vision_config=vision, image_token_id=ids[IMAGE_PAD],
                     video_token_id=ids[VIDEO_PAD], vision_start_token_id=ids[VISION_START],
                     vision_end_token_id=ids[VISION_END], tie_word_embeddings=False)
    dev = resolve_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model = model.to(device=dev, dtype=resolve_dtype(dtype, dev)).eval()
    tokenizer.padding_side = "left"
    return VisionLM(model, tokenizer, dev, image_processor=tiny_image_processor(
        patch_size=patch_size, merge_size=merge_size, max_pixels=max_pixels))
