"""Tiny vision-language models: loading, sampling and scoring with images, the OPD divergence, freezing."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from PIL import Image, ImageDraw

from lyceum.errors import UserError
from lyceum.models.local import position_ids_from_mask
from lyceum.models.vlm import (
    TINY_ARCHS,
    VisionLM,
    build_tiny_vlm,
    freeze_vision,
    is_vision_model,
    load_vlm,
    vision_parameters,
)


def picture(w: int, h: int, color=(255, 255, 255), text: str = "42") -> Image.Image:
    im = Image.new("RGB", (w, h), color)
    ImageDraw.Draw(im).text((2, 2), text, fill=(0, 0, 0))
    return im


def mixed_prompts() -> list:
    """A left-padded batch: one text-only prompt, one small image, two images of different sizes."""
    return [
        "Q: 3+4\nA: ",
        {"prompt": "sum?", "images": [picture(24, 16)]},
        {"prompt": "a <image> b <image> c\n", "images": [picture(16, 64, (200, 0, 0)), picture(64, 48, (0, 90, 0))]},
    ]


@pytest.fixture(scope="module")
def vlm() -> VisionLM:
    return build_tiny_vlm("qwen2_vl", seed=0)


def test_tiny_vlm_saves_and_loads_from_a_local_folder(vlm, tmp_path):
    vlm.save(tmp_path / "m")
    assert is_vision_model(tmp_path / "m")
    loaded = load_vlm(tmp_path / "m")
    assert type(loaded.image_processor).__name__ == "Qwen2VLImageProcessorPil"  # no torchvision needed
    a, b = vlm.prepare(mixed_prompts()[2:]), loaded.prepare(mixed_prompts()[2:])
    assert a[0].ids == b[0].ids
    assert torch.equal(a[0].images.pixel_values, b[0].images.pixel_values)
    ids = torch.tensor([a[0].ids + [10, 11]])
    s1 = vlm.score(ids, images=[a[0].images]).logprobs
    s2 = loaded.score(ids, images=[b[0].images]).logprobs
    assert torch.allclose(s1, s2, atol=1e-6)


def test_load_vlm_refuses_a_folder_without_config(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        load_vlm(tmp_path)


def test_each_image_becomes_its_grid_of_placeholder_tokens(vlm):
    prompt = vlm.prepare(mixed_prompts()[2:])[0]
    grid = prompt.images.grid_thw
    assert grid.tolist() == [[1, 16, 4], [1, 12, 16]]  # different sizes, patch 4 (64 x 48 is resized to a multiple of 8)
    expected = int((grid.prod(-1) // vlm.merge_size**2).sum())
    assert prompt.ids.count(vlm.image_token_id) == expected == 16 + 48


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_sampled_logprobs_equal_score_in_a_left_padded_batch_with_images(arch):
    lm = build_tiny_vlm(arch, seed=1)
    digits = [lm.tokenizer.convert_tokens_to_ids(c) for c in "0123456789"]
    s = lm.sample(mixed_prompts(), max_new_tokens=24, n=3, seed=3, stop_ids=digits)  # rows end at different steps
    ids, mask, start = s.sequences()
    assert (s.prompt_mask == 0).any()  # left padding is present
    assert len(set(s.lengths.tolist())) > 2
    sc = lm.score(ids, mask, start=start, images=s.row_images())
    assert torch.allclose(sc.logprobs * s.mask, s.logprobs, atol=1e-5)


def test_selected_sample_rows_keep_their_images(vlm):
    s = vlm.sample(mixed_prompts(), max_new_tokens=3, n=2, seed=0)
    picked = s.select([5, 0])
    assert picked.prompt_index.tolist() == [2, 0]
    assert [im is None for im in picked.row_images()] == [False, True]
    assert picked.row_images()[0] is s.images[2]


def test_score_equals_the_models_own_forward_pass(vlm):
    """Our 3-D positions are the ones the model computes itself from mm_token_type_ids (one unpadded row)."""
    prompt = vlm.prepare(mixed_prompts()[2:])[0]
    ids = torch.tensor([prompt.ids + [12, 13, 14]])
    out = vlm.model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=prompt.images.pixel_values,
                    image_grid_thw=prompt.images.grid_thw, mm_token_type_ids=(ids == vlm.image_token_id).int())
    ref = torch.log_softmax(out.logits.float(), -1)[0, :-1].gather(-1, ids[0, 1:, None]).squeeze(-1)
    assert torch.allclose(vlm.score(ids, images=[prompt.images]).logprobs[0], ref, atol=1e-5)


def test_the_pixels_reach_the_model(vlm):
    red = vlm.prepare([{"prompt": "x", "images": [picture(32, 32, (250, 0, 0))]}])[0]
    blue = vlm.prepare([{"prompt": "x", "images": [picture(32, 32, (0, 0, 250))]}])[0]
    assert red.ids == blue.ids
    ids = torch.tensor([red.ids + [10, 11]])
    a = vlm.score(ids, images=[red.images]).logprobs
    b = vlm.score(ids, images=[blue.images]).logprobs
    assert (a - b).abs().max() > 1e-3


def test_text_only_rows_get_plain_positions(vlm):
    ids = torch.tensor([[0, 0, 1, 10, 11, 12], [1, 13, 14, 15, 16, 17]])
    mask = (ids != 0).long()
    kw = vlm.vision_inputs(ids, mask, None)
    assert "pixel_values" not in kw
    expected = position_ids_from_mask(mask).masked_fill(mask == 0, 0)
    assert torch.equal(kw["position_ids"], expected[None].expand(3, -1, -1))


def test_scoring_needs_the_images_of_image_prompts(vlm):
    prompt = vlm.prepare(mixed_prompts()[1:2])[0]
    ids = torch.tensor([prompt.ids + [10]])
    with pytest.raises(ValueError, match="image tokens but its images need"):
        vlm.score(ids, images=[vlm.prepare(mixed_prompts()[2:])[0].images])
    with pytest.raises(ValueError, match="pass images="):
        vlm.score(ids)


def test_a_response_that_emits_an_image_placeholder_scores_exactly():
    lm = build_tiny_vlm("qwen2_vl", seed=2)
    with torch.no_grad():
        lm.model.lm_head.weight.mul_(0.05)  # near-uniform next-token distributions: placeholders get drawn
    # 2 prompts x 8 samples x 60 tokens near-uniform over ~60 ids: a placeholder is drawn with near certainty
    s = lm.sample(mixed_prompts()[1:], max_new_tokens=60, n=8, seed=0, stop_ids=[])
    assert (s.tokens[s.mask.bool()] == lm.image_token_id).any()
    ids, mask, start = s.sequences()
    sc = lm.score(ids, mask, start=start, images=s.row_images())
    assert torch.allclose(sc.logprobs * s.mask, s.logprobs, atol=1e-5)


def test_prompt_text_cannot_smuggle_in_an_image_placeholder(vlm):
    with pytest.raises(UserError, match="image placeholder"):
        vlm.prepare([{"prompt": "look <|image_pad|>", "images": [picture(16, 16)]}])


def test_marker_count_must_match_the_images(vlm):
    with pytest.raises(UserError, match="2 <image> marker"):
        vlm.prepare([{"prompt": "<image> and <image>", "images": [picture(16, 16)]}])


def test_chat_messages_place_each_image_where_its_part_is(vlm):
    msg = {"messages": [{"role": "user", "content": [{"type": "text", "text": "ab"},
                                                      {"type": "image", "image": picture(16, 16)},
                                                      {"type": "text", "text": "c"}]}]}
    ids = vlm.prepare([msg])[0].ids
    toks = vlm.tokenizer.convert_ids_to_tokens(ids)
    assert toks[:4] == ["<bos>", "a", "b", "<|vision_start|>"]
    assert toks[-2:] == ["<|vision_end|>", "c"]


CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'][0] }}: {% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for p in m['content'] %}{% if p['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}a: {% endif %}")


def test_a_saved_chat_template_renders_messages_with_image_parts(tmp_path):
    lm = build_tiny_vlm("qwen2_vl", seed=0)
    lm.chat_template = CHAT_TEMPLATE
    loaded = load_vlm(lm.save(tmp_path / "m"))
    assert loaded.chat_template == CHAT_TEMPLATE
    msg = {"messages": [{"role": "user", "content": [{"type": "image", "image": picture(16, 16)},
                                                      {"type": "text", "text": "sum?"}]}]}
    prompt = loaded.prepare([msg])[0]
    text = loaded.tokenizer.decode(prompt.ids, skip_special_tokens=True)
    assert text == "u: sum?\na: "
    assert prompt.ids.count(loaded.image_token_id) == prompt.images.tokens(loaded.merge_size) == 4


# ----------------------------------------------------------------------------- the OPD divergence with images


def _pair_batch():
    student, teacher = build_tiny_vlm("qwen2_vl", seed=0), build_tiny_vlm("qwen2_vl", seed=5)
    s = student.sample(mixed_prompts(), max_new_tokens=10, n=2, seed=0)
    # the reference below feeds ids to the model as they are: no sampled placeholder (that case is tested above)
    assert not (s.tokens[s.mask.bool()] == student.image_token_id).any()
    ids, mask, start = s.sequences()
    return student, teacher, s, ids, mask, start


def _reference_kl(student, teacher, s, ids, mask, start):
    """Full-softmax reverse KL per response position from each model's own forward pass (no chunking)."""
    out = []
    for lm in (student, teacher):
        kw = lm.vision_inputs(ids, mask, s.row_images())
        kw.pop("_literal")
        logits = lm.model(**kw).logits.float()[:, start - 1: -1]
        out.append(torch.log_softmax(logits, -1))
    lp, lq = out
    return (lp.exp() * (lp - lq)).sum(-1) * s.mask


def test_full_vocab_reverse_kl_through_score_matches_a_full_softmax_reference():
    student, teacher, s, ids, mask, start = _pair_batch()
    V = student.vocab_size
    sp = student.score(ids, mask, start=start, topk=V, images=s.row_images(), chunk_size=7)
    tq = teacher.score(ids, mask, start=start, given_ids=sp.topk_ids, images=s.row_images(), chunk_size=5)
    kl = (sp.topk_logprobs.exp() * (sp.topk_logprobs - tq.given_logprobs)).sum(-1) * s.mask
    ref = _reference_kl(student, teacher, s, ids, mask, start)
    assert ref[s.mask.bool()].min() > 0
    assert torch.allclose(kl, ref, atol=1e-5)


def test_opd_loss_on_vlm_hidden_states_matches_a_full_softmax_reference():
    from lyceum.train.losses import Head, divergence

    student, teacher, s, ids, mask, start = _pair_batch()
    heads = [Head(lm.hidden_states(ids, mask, s.row_images())[:, start - 1: -1],
                  lm.model.get_output_embeddings().weight) for lm in (student, teacher)]
    d = divergence(heads[0], heads[1], s.tokens, support="full", kind="reverse_kl", mask=s.mask.bool(),
                   chunk_size=4)
    ref = _reference_kl(student, teacher, s, ids, mask, start)
    assert torch.allclose(d.detach(), ref, atol=1e-5)
    d.sum().backward()  # the gradient reaches the student's vision tower through the image tokens
    assert student.model.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- --freeze-vision


def test_freeze_vision_stops_the_vision_encoder_but_not_the_projector_or_language_model():
    lm = build_tiny_vlm("qwen2_vl", seed=0)
    counts = freeze_vision(lm.model)
    frozen = set(vision_parameters(lm.model, projector=False))
    assert frozen and counts["frozen"] == sum(p.numel() for n, p in lm.model.named_parameters() if n in frozen)
    prompt = lm.prepare(mixed_prompts()[1:2])[0]
    ids = torch.tensor([prompt.ids + [10, 11]])
    hidden = lm.hidden_states(ids, images=[prompt.images])
    lm.logits(hidden).logsumexp(-1).sum().backward()
    grads = {n: p.grad for n, p in lm.model.named_parameters()}
    assert all(grads[n] is None for n in frozen)
    assert grads["model.visual.merger.mlp.0.weight"] is not None  # the projector trains
    assert grads["lm_head.weight"] is not None
    assert freeze_vision(lm.model, frozen=False)["frozen"] == 0
    assert all(p.requires_grad for p in lm.model.parameters())
