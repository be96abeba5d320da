"""The lab's SFT trainer and model recipes: training lowers the loss, builds are deterministic and cached."""

import pytest
import torch

from lyceum.errors import UserError
from lyceum.lab import make_models as mm
from lyceum.lab import models, tasks
from lyceum.models.local import build_tiny, load_local
from lyceum.train.sft import SFTConfig, collate, encode_rows, mean_loss, sft

# Two tiny recipes, the second starting from the first, so a whole build takes seconds.
TINY = models.Recipe("tiny_base", "test base", digits=(1, 2), hidden=32, layers=1, steps=6, batch_size=8,
                     rows=64, warmup_steps=2)
TINY_CHILD = models.Recipe("tiny_child", "test child", digits=(1, 3), hidden=32, layers=1, init_from="tiny_base",
                           steps=4, batch_size=8, rows=64, warmup_steps=1, seed=1)
QUIET = {"log": lambda _: None}
LAB_RECIPES = list(models.RECIPES)  # the lab's own models, before any fixture adds the test recipes


@pytest.fixture(scope="module")
def tiny_recipes():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(models.RECIPES, TINY.name, TINY)
        mp.setitem(models.RECIPES, TINY_CHILD.name, TINY_CHILD)
        mp.setattr(models, "MEASURE_ROWS", 4)
        yield


@pytest.fixture(scope="module")
def built(tiny_recipes, tmp_path_factory):
    """The tiny pair built once by make-models."""
    return mm.make_models(tmp_path_factory.mktemp("models"), only=["tiny_child"], **QUIET)


def _weights(path):
    return load_local(path).model.state_dict()


def test_sft_lowers_the_response_loss():
    lm = build_tiny("llama", tokenizer=models.lab_tokenizer(), hidden=32, layers=1, seed=0)
    rows = tasks.examples(tasks.make_problems(64, digits=(1, 2), seed=0))
    before = mean_loss(lm, rows)
    history = sft(lm, rows, SFTConfig(steps=20, batch_size=16, lr=1e-2, warmup_steps=2, log_every=5))
    after = mean_loss(lm, rows)
    assert after < 0.7 * before
    assert [h["step"] for h in history] == [5, 10, 15, 20]


def test_only_response_and_end_of_text_tokens_are_labelled():
    tok = models.lab_tokenizer()
    [(ids, n_prompt)] = encode_rows(tok, [{"prompt": "Q: 1+2\nA: ", "response": "#3"}])
    assert n_prompt == 1 + len("Q: 1+2\nA: ")  # <bos> + the prompt's characters
    batch = collate([(ids, n_prompt), (ids[:5], 3)], tok.pad_token_id)
    labels = batch["labels"][0].tolist()
    assert labels[:n_prompt] == [-100] * n_prompt
    assert tok.decode(labels[n_prompt:-1]) == "#3" and labels[-1] == tok.eos_token_id
    assert batch["attention_mask"][1].tolist() == [1] * 5 + [0] * (len(ids) - 5)


def test_make_models_builds_parents_first_and_is_deterministic(built, tmp_path):
    again = mm.make_models(tmp_path, only=["tiny_child"], **QUIET)
    assert list(built) == list(again) == ["tiny_base", "tiny_child"]
    for name in built:
        wa, wb = _weights(built[name]), _weights(again[name])
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(_weights(built["tiny_base"])["lm_head.weight"],
                           _weights(built["tiny_child"])["lm_head.weight"])


def test_a_different_seed_gives_different_weights(built, monkeypatch, tmp_path):
    monkeypatch.setitem(models.RECIPES, "tiny_base", models.Recipe(**{**vars(TINY), "seed": 7}))
    other = mm.make_models(tmp_path, only=["tiny_base"], **QUIET)["tiny_base"]
    assert not torch.equal(_weights(built["tiny_base"])["lm_head.weight"], _weights(other)["lm_head.weight"])


def test_current_models_are_kept_and_changed_recipes_are_stale(built, monkeypatch):
    said = []
    mm.make_models(built["tiny_base"].parent, only=["tiny_child"], log=said.append)
    assert said[:2] == [f"tiny_base: current, kept ({built['tiny_base']})",
                        f"tiny_child: current, kept ({built['tiny_child']})"]
    # changing the parent's recipe makes both stale: the child's fingerprint includes its parent's
    monkeypatch.setitem(models.RECIPES, "tiny_base", models.Recipe(**{**vars(TINY), "lr": 1e-3}))
    assert not models.is_current(built["tiny_base"], "tiny_base")
    assert not models.is_current(built["tiny_child"], "tiny_child")


def test_lab_model_dir_finds_current_models_and_builds_missing_ones(built, tmp_path):
    root = built["tiny_base"].parent
    assert models.lab_model_dir("tiny_child", root=root, build=False) == built["tiny_child"]
    with pytest.raises(UserError, match="make-models"):
        models.lab_model_dir("tiny_base", root=tmp_path, build=False)
    path = models.lab_model_dir("tiny_base", root=tmp_path, **QUIET)
    assert path == tmp_path / "tiny_base" and models.is_current(path, "tiny_base")
    record = models.read_record(path)
    assert record["recipe"]["steps"] == 6 and record["measured"]["n"] == 4


def test_unknown_model_names_are_user_errors():
    with pytest.raises(UserError, match="unknown lab model"):
        models.lab_model_dir("nope")


def test_max_new_tokens_fits_the_longest_response_in_both_patterns():
    for pattern in ("R", "L"):
        for p in tasks.make_problems(200, digits=4, seed=1):
            assert len(tasks.render_response(p, pattern)) + 1 <= models.max_new_tokens(4)


def test_every_recipe_repeats_its_parents_architecture():
    for r in models.RECIPES.values():
        if r.init_from:
            parent = models.recipe(r.init_from)
            assert (r.arch, r.hidden, r.layers, r.heads) == (parent.arch, parent.hidden, parent.layers, parent.heads)


def test_the_shipped_checkpoints_are_current_and_small():
    for name in LAB_RECIPES:
        assert models.is_current(models.SHIPPED_DIR / name, name), f"rebuild: lyceum lab make-models --out {models.SHIPPED_DIR}"
    total = sum(f.stat().st_size for f in models.SHIPPED_DIR.rglob("*") if f.is_file())
    assert total <= 20 * 2**20


def test_the_shipped_student_is_weak_where_the_teachers_are_strong():
    rows = models.eval_rows(100)  # held-out 4-digit sums
    acc = {name: models.accuracy(load_local(models.SHIPPED_DIR / name), rows)["accuracy"]
           for name in ("student", "teacher", "teacher_l", "teacher_big")}
    assert acc["student"] < 0.5
    assert min(acc["teacher"], acc["teacher_l"], acc["teacher_big"]) >= 0.95
