"""Prompt rows with images: the prompts-file loader, HiPhO problems as RL prompts, the lab's visual task."""

from __future__ import annotations

import json

import pytest

from lyceum.errors import UserError
from lyceum.olympiad.prompts_rl import hipho_prompt_rows, hipho_reward, hipho_verdicts
from lyceum.train.image_prompts import has_images, load_image_prompts, prompt_input, prompt_text, row_images

PIL = pytest.importorskip("PIL")
from PIL import Image


def png(path, size=(20, 12), color=(255, 255, 255)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- the loader


def test_images_resolve_against_the_prompts_file_folder(tmp_path):
    png(tmp_path / "figs" / "a.png")
    f = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "sum?", "images": ["figs/a.png"], "answer": 3},
                                                 {"prompt": "1+2="}])
    rows = load_image_prompts(f)
    assert rows[0]["images"] == [str((tmp_path / "figs" / "a.png").resolve())]
    assert rows[0]["answer"] == 3  # other fields are kept for the verifier
    assert prompt_input(rows[1]) == "1+2="  # text rows stay strings, as LocalLM takes them
    assert prompt_input(rows[0]) == {"prompt": "sum?", "images": rows[0]["images"]}
    assert has_images(rows)


def test_chat_messages_with_image_and_image_url_parts(tmp_path):
    a, b = png(tmp_path / "a.png"), png(tmp_path / "b.png")
    msg = [{"role": "user", "content": [{"type": "image", "image": "a.png"},
                                        {"type": "image_url", "image_url": {"url": f"file://{b}"}},
                                        {"type": "text", "text": "compare"}]}]
    rows = load_image_prompts(write_jsonl(tmp_path / "p.jsonl", [{"messages": msg, "answer": "A"}]))
    parts = rows[0]["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image", "image", "text"]
    assert row_images(rows[0]) == [str(a.resolve()), str(b.resolve())]
    assert prompt_text(rows[0]) == "compare"


def test_a_missing_image_names_the_row(tmp_path):
    f = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "x"}, {"prompt": "y", "images": ["nope.png"]}])
    with pytest.raises(UserError, match=r"row 2: image not found: .*nope.png"):
        load_image_prompts(f)


def test_web_urls_are_refused(tmp_path):
    f = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "y", "images": ["https://example.com/a.png"]}])
    with pytest.raises(UserError, match="is a URL"):
        load_image_prompts(f)


def test_image_markers_must_match_the_images(tmp_path):
    png(tmp_path / "a.png")
    f = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "<image> vs <image>", "images": ["a.png"]}])
    with pytest.raises(UserError, match="2 <image> marker"):
        load_image_prompts(f)


def test_a_row_needs_a_prompt_or_messages(tmp_path):
    with pytest.raises(UserError, match="row 1 has neither"):
        load_image_prompts(write_jsonl(tmp_path / "p.jsonl", [{"question": "x"}]))


# ----------------------------------------------------------------------------- HiPhO rows


def tiny_exam(root):
    """A HiPhO-shaped exam: a diagram problem with two sub-answers, a text problem, a judge-only problem."""
    png(root / "image_question" / "T_1_1.png", (60, 40))
    records = [
        {"information": "g = 9.8 m/s^2"},
        {"id": "T_1", "context": "A block on a slope.", "question": "Find a and v.", "answer": ["2.0", "v=\\sqrt{2gh}"],
         "answer_type": ["Numerical Value", "Expression"], "unit": ["m/s^2"], "points": [1.0, 1.5],
         "modality": "text+illustration figure", "field": "Mechanics", "image_question": ["image_question/T_1_1.png"]},
        {"id": "T_2", "context": "", "question": "Which?", "answer": ["B"], "answer_type": ["Multiple Choice"],
         "unit": [], "points": [0.5], "modality": "text-only", "field": "Optics", "image_question": []},
        {"id": "T_3", "context": "", "question": "Bound?", "answer": ["x>1"], "answer_type": ["Inequality"],
         "unit": [], "points": [2.0], "modality": "text-only", "field": "Mechanics", "image_question": []},
    ]
    (root / "TEST_2025.json").write_text(json.dumps(records), encoding="utf-8")
    return root


def test_hipho_problems_become_prompt_rows_with_their_diagrams(tmp_path):
    rows, report = hipho_prompt_rows(tiny_exam(tmp_path))
    assert [r["id"] for r in rows] == ["T_1", "T_2"]
    assert report.skipped == {"with judge-only sub-answers": 1}
    first = rows[0]
    assert first["images"] == [str((tmp_path / "image_question" / "T_1_1.png").resolve())]
    assert first["difficulty"] == 2.5  # HiPhO points: the curriculum's difficulty axis
    assert first["answers"] == ["2.0", "v=\\sqrt{2gh}"]
    assert "g = 9.8" in first["prompt"] and "Find a and v." in first["prompt"]
    assert "1 figure(s) are attached" in first["prompt"]
    assert "images" not in rows[1]


def test_hipho_filters_by_modality_field_and_images(tmp_path):
    tiny_exam(tmp_path)
    rows, _ = hipho_prompt_rows(tmp_path, modalities=["text-only"])
    assert [r["id"] for r in rows] == ["T_2"]
    rows, _ = hipho_prompt_rows(tmp_path, fields=["mechanics"], include_judge_only=True)
    assert [r["id"] for r in rows] == ["T_1", "T_3"]
    rows, _ = hipho_prompt_rows(tmp_path, only_with_images=True)
    assert [r["id"] for r in rows] == ["T_1"]
    rows, _ = hipho_prompt_rows(tmp_path, images=False)
    assert "images" not in rows[0] and "not shown" in rows[0]["prompt"]
    with pytest.raises(UserError, match="unknown modality"):
        hipho_prompt_rows(tmp_path, modalities=["video"])


def test_hipho_reward_is_the_mean_over_sub_answers(tmp_path):
    row = hipho_prompt_rows(tiny_exam(tmp_path))[0][0]
    assert hipho_verdicts(row, "so \\boxed{2.0} and \\boxed{v = \\sqrt{2 g h}}") == [True, True]
    assert hipho_reward(row, "\\boxed{2.003}\\boxed{v=gh}") == 0.5
    assert hipho_reward(row, "no boxes at all") == 0.0


def test_rows_written_and_read_back_carry_their_images(tmp_path):
    from lyceum.runs import write_jsonl as write_rows

    rows, _ = hipho_prompt_rows(tiny_exam(tmp_path / "hipho"))
    write_rows(tmp_path / "prompts.jsonl", rows)
    back = load_image_prompts(tmp_path / "prompts.jsonl")
    assert back[0]["images"] == rows[0]["images"] and back[0]["answers"] == rows[0]["answers"]


def test_real_hipho_diagram_problems_become_prompts(hipho_dir):
    rows, report = hipho_prompt_rows(hipho_dir, ["IPhO_2025"], only_with_images=True)
    assert rows and report.images >= len(rows)
    assert all(r["images"] and all(__import__("pathlib").Path(p).is_file() for p in r["images"]) for r in rows)
    assert all(r["difficulty"] > 0 for r in rows)


def test_a_tiny_vlm_samples_from_a_real_hipho_diagram(hipho_dir):
    torch = pytest.importorskip("torch")
    from lyceum.models.vlm import build_tiny_vlm

    rows, _ = hipho_prompt_rows(hipho_dir, ["IPhO_2025"], only_with_images=True)
    row = {**rows[0], "prompt": rows[0]["prompt"][-300:]}  # the tail of the text keeps the test quick
    vlm = build_tiny_vlm("qwen2_5_vl", seed=0, max_pixels=48 * 48)
    s = vlm.sample([prompt_input(row)], max_new_tokens=4, n=2, seed=0)
    assert len(s.images[0]) == len(row["images"])
    ids, mask, start = s.sequences()
    sc = vlm.score(ids, mask, start=start, images=s.row_images())
    assert torch.allclose(sc.logprobs * s.mask, s.logprobs, atol=1e-5)


# ----------------------------------------------------------------------------- the lab's visual task


def test_visual_task_image_rows_hide_the_numbers_from_the_text(tmp_path):
    from lyceum.lab.visual import make_visual_problems, verify_visual, visual_rows, write_visual_prompts

    problems = make_visual_problems(20, digits=2, seed=1)
    image_rows = visual_rows(problems, mode="image")
    text_rows = visual_rows(problems, mode="text")
    assert len({r["prompt"] for r in image_rows}) == 1  # only the pixels differ
    assert text_rows[0]["prompt"] == f"{problems[0].a} {problems[0].b}\nsum="
    assert image_rows[0]["images"][0].size == (48, 24)
    assert verify_visual(image_rows[0], f"#{problems[0].answer}") == 1.0
    assert verify_visual(image_rows[0], f"#{problems[0].answer + 1}") == 0.0
    rows = load_image_prompts(write_visual_prompts(tmp_path, 5, seed=2))
    assert len(rows) == 5 and all(len(r["images"]) == 1 for r in rows)


def test_the_digit_probe_shows_one_digit_and_asks_for_it():
    from lyceum.lab.visual import digit_rows, verify_visual

    rows = digit_rows(30, seed=0)
    assert {r["answer"] for r in rows} <= set(range(10)) and len({r["answer"] for r in rows}) > 5
    assert all(r["images"][0].size == (24, 24) and r["prompt"] == "<image>\nread=" for r in rows)
    assert verify_visual(rows[0], rows[0]["response"]) == 1.0


def test_visual_sft_lowers_the_loss_through_the_vision_tower():
    pytest.importorskip("torch")
    from lyceum.lab.visual import make_visual_problems, sft_vlm, visual_rows
    from lyceum.models.vlm import build_tiny_vlm

    vlm = build_tiny_vlm("qwen2_vl", seed=0, max_pixels=48 * 24)
    rows = visual_rows(make_visual_problems(16, seed=0), mode="image")
    hist = sft_vlm(vlm, rows, steps=12, batch_size=8, warmup_steps=2)
    assert hist[-1]["loss"] < hist[0]["loss"]
