"""Vision-language students in `rl train` and `distill train`: images go through rollouts, the training forward
pass, the teacher and the checkpoint; HiPhO problems with diagrams are prompts (`--data hipho DIR`)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")

from test_vlm_prompts import png, tiny_exam, write_jsonl

from lyceum.cli import main
from lyceum.errors import UserError
from lyceum.models.local import build_tiny, load_local
from lyceum.models.tokenizers import char_tokenizer
from lyceum.models.vlm import TINY_ALPHABET, VisionLM, build_tiny_vlm, vision_parameters
from lyceum.runs import RunDir
from lyceum.train.rl import RLConfig, rl_train
from lyceum.train.verifiers import register_verifier

torch.set_num_threads(1)


def tiny_vl(seed=0, **kw):
    return build_tiny_vlm("qwen2_5_vl", seed=seed, max_pixels=32 * 32, **kw)


def answers_with_a_digit(row, response):
    """A toy verifier with variance on a random model: the answer is right when it starts with a digit."""
    return float(response[:1].isdigit())


register_verifier("starts-with-digit", answers_with_a_digit)


def two_exams(root):
    """The HiPhO-shaped exam of test_vlm_prompts plus a second one (held out for evaluation)."""
    tiny_exam(root)
    png(root / "image_question" / "E_1_1.png", (40, 24), (0, 0, 0))
    records = [{"information": ""},
               {"id": "E_1", "context": "", "question": "Speed?", "answer": ["3"], "answer_type": ["Numerical Value"],
                "unit": [], "points": [1.0], "modality": "text+data figure", "field": "Mechanics",
                "image_question": ["image_question/E_1_1.png"]}]
    (root / "EVAL_2025.json").write_text(json.dumps(records), encoding="utf-8")
    return root


def rl_args(student, data, out, *extra):
    return ["rl", "train", "--student", str(student), "--data", "hipho", str(data), "--out", str(out),
            "--steps", "2", "--prompts-per-step", "2", "--n", "4", "--max-new-tokens", "4", "--pass-rate-k", "0",
            "--micro-batch-size", "4", "--eval-max-new-tokens", "4", "--device", "cpu", "--lr", "1e-2",
            "--checkpoint-every", "0", *extra]


def test_load_local_opens_a_vision_language_folder(tmp_path):
    tiny_vl().save(tmp_path / "vl")
    lm = load_local(tmp_path / "vl", device="cpu")
    assert isinstance(lm, VisionLM) and lm.image_processor is not None


def test_rl_train_on_hipho_problems_with_images_runs_end_to_end(tmp_path, capsys):
    tiny_vl().save(tmp_path / "vl")
    data = two_exams(tmp_path / "hipho")
    code = main(rl_args(tmp_path / "vl", data, tmp_path / "run", "--exams", "TEST_2025", "--eval-exams", "EVAL_2025"))
    assert code == 0
    run = tmp_path / "run"
    train = [r for r in RunDir(run).read_metrics() if r.get("event") == "train"]
    evals = [r for r in RunDir(run).read_metrics() if r.get("event") == "eval"]
    assert [r["step"] for r in train] == [1, 2] and all("reward" in r and "loss" in r for r in train)
    assert [r["step"] for r in evals] == [0, 2]  # the held-out exam, graded before and after
    config = (run / "config.yaml").read_text()
    assert "verifier: hipho" in config  # --data hipho rewards by the olympiad rules unless told otherwise
    assert "n_buckets: 3" in config and "difficulty_key: difficulty" in config  # HiPhO points, in 3 buckets
    assert "kept 2 problems (1 images)" in capsys.readouterr().out
    assert isinstance(load_local(run / "checkpoint" / "model", device="cpu"), VisionLM)  # saved with its processor


def test_rl_training_reaches_the_projector_through_the_images_and_freezes_the_vision_encoder(tmp_path):
    rows = [{"prompt": "<image>\nsum=", "images": [str(png(tmp_path / f"{i}.png", (24, 16), (40 * i, 0, 0)))],
             "difficulty": 1} for i in range(4)]

    def trained(freeze: bool):
        student = tiny_vl()
        before = {k: v.clone() for k, v in student.model.named_parameters()}
        cfg = RLConfig(steps=2, lr=1e-2, prompts_per_step=4, n=4, max_new_tokens=3, verifier="starts-with-digit",
                       pass_rate_k=0, eval_every=0, checkpoint_every=-1, diagnostics_every=0, device="cpu",
                       freeze_vision=freeze, loss="grpo")
        rl_train(student, rows, tmp_path / f"run-{freeze}", cfg)
        return {k for k, v in student.model.named_parameters() if not torch.equal(v, before[k])}

    changed = trained(freeze=True)
    vision = set(vision_parameters(tiny_vl().model, projector=False))
    projector = set(vision_parameters(tiny_vl().model)) - vision
    assert changed & projector  # the merger only gets a gradient through the images in the forward pass
    assert not changed & vision
    assert trained(freeze=False) & vision  # --no-freeze-vision trains the vision encoder too


def test_the_training_forward_pass_sees_the_pixels_the_sampler_saw(tmp_path):
    """Per micro-batch (re-padded, columns trimmed), the student's token log-probs equal the sampled ones."""
    from lyceum.train.logits import head_source
    from lyceum.train.losses import token_logprobs
    from lyceum.train.rollout import micro_batches, rollout

    vlm = tiny_vl()
    rows = [{"prompt": "<image>\nsum=", "images": [str(png(tmp_path / "a.png", (24, 16), (200, 0, 0)))]},
            {"prompt": "a longer text-only prompt\nsum="},
            {"prompt": "two <image> and <image>?", "images": [str(png(tmp_path / "b.png", (40, 8), (0, 90, 0))),
                                                              str(png(tmp_path / "c.png", (8, 32), (0, 0, 250)))]}]
    ro = rollout(vlm, rows, n=2, max_new_tokens=5, seed=0)
    seen = 0
    for mb in micro_batches(ro, 4):
        assert mb.images is not None and len(mb.images) == len(mb.index)
        with torch.no_grad():
            hidden = vlm.hidden_states(mb.ids, mb.mask, **mb.body_inputs())[:, mb.start - 1: -1]
            lp = token_logprobs(head_source(vlm, hidden, vlm.vocab_size), mb.tokens) * mb.response_mask
        assert torch.allclose(lp, mb.old_logprobs * mb.response_mask, atol=1e-5)
        seen += len(mb.index)
    assert seen == 6


def test_distill_train_between_two_vision_language_models_on_hipho(tmp_path):
    tiny_vl(0).save(tmp_path / "student")
    tiny_vl(1).save(tmp_path / "teacher")
    data = tiny_exam(tmp_path / "hipho")
    code = main(["distill", "train", "--student", str(tmp_path / "student"), "--teacher", str(tmp_path / "teacher"),
                 "--data", "hipho", str(data), "--out", str(tmp_path / "run"), "--steps", "2",
                 "--prompts-per-step", "2", "--n", "2", "--max-new-tokens", "4", "--device", "cpu", "--lr", "1e-3",
                 "--checkpoint-every", "-1", "--no-freeze-vision"])
    assert code == 0
    train = [r for r in RunDir(tmp_path / "run").read_metrics() if r.get("event") == "train"]
    assert len(train) == 2 and all(r["loss"] > 0 and 0 <= r["overlap_ratio"] <= 1 for r in train)
    assert "vision encoder trained" in (tmp_path / "run" / "run.log").read_text()


def test_a_text_student_gets_hipho_rows_without_images(tmp_path):
    build_tiny("llama", tokenizer=char_tokenizer(TINY_ALPHABET), hidden=32, layers=1, heads=2).save(tmp_path / "lm")
    data = tiny_exam(tmp_path / "hipho")
    assert main(rl_args(tmp_path / "lm", data, tmp_path / "run", "--steps", "1")) == 0
    assert [r["step"] for r in RunDir(tmp_path / "run").read_metrics() if r.get("event") == "train"] == [1]


def test_a_text_student_refuses_prompts_with_images(tmp_path):
    lm = build_tiny("llama", tokenizer=char_tokenizer(TINY_ALPHABET), hidden=32, layers=1, heads=2)
    rows = [{"prompt": "sum=", "images": [str(png(tmp_path / "a.png"))], "difficulty": 1}]
    cfg = RLConfig(steps=1, pass_rate_k=0, eval_every=0, checkpoint_every=-1, device="cpu")
    with pytest.raises(UserError, match="1 of the prompt rows carry images, but the model [(]LocalLM[)] takes no images"):
        rl_train(lm, rows, tmp_path / "run", cfg)


def test_a_prompts_file_with_images_resolves_them_against_its_folder(tmp_path):
    from lyceum.train.schedules import load_prompts

    png(tmp_path / "figs" / "a.png")
    write_jsonl(tmp_path / "p.jsonl", [{"prompt": "what?", "images": ["figs/a.png"]}, {"prompt": "text only"},
                                        {"messages": [{"role": "user", "content": [
                                            {"type": "image", "image": "figs/a.png"}, {"type": "text", "text": "hi"}]}]}])
    rows = load_prompts(tmp_path / "p.jsonl")
    assert rows[0]["images"] == [str((tmp_path / "figs" / "a.png").resolve())]
    assert rows[1] == {"prompt": "text only"}
    assert rows[2]["prompt"] == "hi" and rows[2]["messages"][0]["content"][0]["image"].endswith("a.png")


def test_data_flags_refuse_mixed_or_missing_prompt_sources(tmp_path, capsys):
    tiny_vl().save(tmp_path / "vl")
    base = ["rl", "train", "--student", str(tmp_path / "vl"), "--out", str(tmp_path / "run")]
    assert main(base) == 2
    assert "give the prompts" in capsys.readouterr().err
    assert main([*base, "--exams", "IPhO_2025", "--prompts", "p.jsonl"]) == 2
    assert "--exams filters a data set" in capsys.readouterr().err
    assert main([*base, "--data", "cifar", str(tmp_path)]) == 2
    assert "unknown data set 'cifar'" in capsys.readouterr().err


def test_rl_runs_on_real_hipho_diagram_problems(hipho_dir, tmp_path):
    tiny_vl().save(tmp_path / "vl")
    # F=MA's problems are short (about 1,000 characters): a step is seconds, not minutes, on a CPU
    code = main(rl_args(tmp_path / "vl", hipho_dir, tmp_path / "run", "--exams", "F=MA_2025", "--steps", "1",
                        "--modality", "text+illustration figure", "--n", "2", "--prompts-per-step", "1"))
    assert code == 0
    assert [r["step"] for r in RunDir(tmp_path / "run").read_metrics() if r.get("event") == "train"] == [1]


def test_a_vision_language_run_resumes_from_its_checkpoint(tmp_path):
    rows = [{"prompt": "<image>\nsum=", "images": [str(png(tmp_path / f"{i}.png", (16, 16), (60 * i, 0, 0)))],
             "difficulty": 1} for i in range(2)]
    cfg = {"lr": 1e-2, "prompts_per_step": 2, "n": 2, "max_new_tokens": 3, "verifier": "starts-with-digit",
           "pass_rate_k": 2, "max_pass_rate": 1.0, "drop_unsolved": False, "eval_every": 0, "checkpoint_every": 1,
           "diagnostics_every": 0, "device": "cpu"}
    first = tiny_vl()
    rl_train(first, rows, tmp_path / "run", RLConfig(steps=1, **cfg))  # pass rates sampled with the images
    again = tiny_vl()  # a fresh process would load the initial weights; the checkpoint puts the trained ones back
    rl_train(again, rows, tmp_path / "run", RLConfig(steps=2, **cfg))
    assert [r["step"] for r in RunDir(tmp_path / "run").read_metrics() if r.get("event") == "train"] == [1, 2]
    assert "at step 1" in (tmp_path / "run" / "run.log").read_text()  # resumed, not started over
    assert (tmp_path / "run" / "pool.jsonl").exists()


def test_a_served_sampler_is_refused_rows_with_images_unless_it_takes_them(tmp_path):
    """It encodes with the local VisionLM but sends token ids only: the server would get placeholders, no pixels."""
    from lyceum.models.served import ServedSampler
    from lyceum.train.rollout import check_images_fit, sampler_inputs

    rows = [{"prompt": "sum=", "images": [str(png(tmp_path / "a.png"))]}, {"prompt": "text only"}]
    served = ServedSampler(server=None, lm=tiny_vl())
    with pytest.raises(UserError, match=r"the model \(ServedSampler\) takes no images"):
        check_images_fit(served, rows)
    served.takes_images = True  # a sampler that sends image parts says so
    assert sampler_inputs(served, rows)[0] == {"prompt": "sum=", "images": rows[0]["images"]}
    assert sampler_inputs(served, rows)[1] == "text only"
