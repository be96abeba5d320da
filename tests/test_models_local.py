"""Local models: batched KV-cached sampling, chunked scoring, vocabulary checks, loading from a folder."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from lyceum.errors import UserError
from lyceum.models.local import build_tiny, check_pair, check_same_vocab, load_local
from lyceum.models.tokenizers import char_tokenizer

ALPHABET = "0123456789+=#|\n "


@pytest.fixture(scope="module")
def lm():
    return build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=32, layers=2, heads=4, seed=0)


def reference_logprobs(lm, ids, mask):
    """Plain full-vocabulary log-softmax of one ordinary forward pass."""
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        return lm.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float().log_softmax(-1)


def test_char_tokenizer_round_trips_text_and_prepends_bos():
    tok = char_tokenizer(ALPHABET)
    ids = tok("12+3=\n4 5").input_ids
    assert ids[0] == tok.bos_token_id and len(ids) == 10
    assert tok.decode(ids, skip_special_tokens=True) == "12+3=\n4 5"
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok("7", add_special_tokens=False).input_ids == [4 + ALPHABET.index("7")]


def test_sample_shapes_masks_and_finish_reasons(lm):
    s = lm.sample(["12+3=", "1="], max_new_tokens=12, n=3, seed=0)
    N, L = s.tokens.shape
    assert N == 6 and L <= 12
    assert s.prompt_index.tolist() == [0, 0, 0, 1, 1, 1]
    assert s.logprobs.shape == s.mask.shape == (6, L)
    assert s.prompt_ids.shape == (6, 6) and s.prompt_mask[3].tolist() == [0, 0, 0, 1, 1, 1]
    for i in range(N):
        n = int(s.lengths[i])
        assert s.mask[i, :n].eq(1).all() and s.mask[i, n:].eq(0).all()
        assert (s.logprobs[i, :n] <= 0).all() and s.logprobs[i, n:].eq(0).all()
        if s.finish_reasons[i] == "stop":
            assert s.tokens[i, n - 1] == lm.tokenizer.eos_token_id
        else:
            assert s.finish_reasons[i] == "length" and n == 12
            assert lm.tokenizer.eos_token_id not in s.tokens[i].tolist()


def test_sample_is_deterministic_under_a_seed_and_varies_across_seeds(lm):
    a = lm.sample(["12+3="] * 4, max_new_tokens=16, seed=7)
    b = lm.sample(["12+3="] * 4, max_new_tokens=16, seed=7)
    c = lm.sample(["12+3="] * 4, max_new_tokens=16, seed=8)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.logprobs, b.logprobs)
    assert not torch.equal(a.tokens, c.tokens)


def test_samples_are_ordinary_tensors_the_loss_can_backpropagate_through(lm):
    # sampling runs under torch.inference_mode; its tensors must not stay inference tensors
    s = lm.sample(["12+3="], max_new_tokens=4, n=2, seed=0)
    tensors = (s.prompt_index, s.prompt_ids, s.prompt_mask, s.tokens, s.logprobs, s.mask)
    assert not any(t.is_inference() for t in tensors)
    ids, mask, start = s.sequences()
    logp = lm.logits(lm.hidden_states(ids, mask)).log_softmax(-1)[:, start - 1: -1].gather(-1, s.tokens[..., None])
    (logp.squeeze(-1) * s.mask).sum().backward()
    assert lm.model.get_output_embeddings().weight.grad is not None
    lm.model.zero_grad(set_to_none=True)


def test_left_padding_gives_the_same_greedy_tokens_as_an_unpadded_prompt(lm):
    batch = lm.sample(["12+3+45=", "1="], max_new_tokens=10, temperature=0)
    alone = lm.sample(["1="], max_new_tokens=10, temperature=0)
    n = int(alone.lengths[0])
    assert batch.tokens[1, :n].tolist() == alone.tokens[0, :n].tolist()


def test_sampling_logprobs_are_the_model_logprobs_at_temperature_one(lm):
    s = lm.sample(["12+3=", "9="], max_new_tokens=10, n=2, seed=3)
    ids, mask, start = s.sequences()
    ref = reference_logprobs(lm, ids, mask)[:, start - 1: -1].gather(-1, ids[:, start:, None]).squeeze(-1)
    assert torch.allclose(s.logprobs, ref * s.mask, atol=1e-5)


def test_top_p_sampling_keeps_only_the_nucleus(lm):
    s = lm.sample(["12+3="] * 8, max_new_tokens=6, top_p=0.3, seed=0)
    ids, mask, start = s.sequences()
    probs = reference_logprobs(lm, ids, mask)[:, start - 1: -1].exp()
    for i, j in s.mask.nonzero().tolist():
        p = probs[i, j]
        mass_above = p[p > p[ids[i, start + j]]].sum()
        assert mass_above < 0.3 + 1e-6  # the drawn token is inside the smallest set reaching mass 0.3


def test_score_matches_a_full_softmax_reference(lm):
    s = lm.sample(["12+3=", "7+8=", "1="], max_new_tokens=10, n=2, seed=1)
    ids, mask, start = s.sequences()
    sc = lm.score(ids, mask, start=start, chunk_size=5)
    ref = reference_logprobs(lm, ids, mask)[:, start - 1: -1]
    m = sc.mask
    assert torch.equal(m, s.mask)
    assert torch.allclose(sc.logprobs, ref.gather(-1, ids[:, start:, None]).squeeze(-1) * m, atol=1e-5)


def test_the_scan_of_a_models_head_matches_a_full_softmax_reference(lm):
    # top-k sets, log-probs at another model's ids and entropies moved from LocalLM.score to the training scan
    from lyceum.train.logits import response_head
    from lyceum.train.scan import token_scan

    s = lm.sample(["12+3=", "7+8=", "1="], max_new_tokens=10, n=2, seed=1)
    ids, mask, start = s.sequences()
    head = response_head(lm, ids, mask, start, lm.vocab_size)
    scan = token_scan(head, head, ids[:, start:], mask[:, start:], k=4, chunk_size=5)
    ref = reference_logprobs(lm, ids, mask)[:, start - 1: -1]
    m = s.mask
    top = ref.topk(4, -1)
    assert torch.allclose(scan.student_topk_logprobs, top.values * m[..., None], atol=1e-5)
    assert torch.equal(scan.student_topk_ids[m.bool()], top.indices[m.bool()])
    assert torch.allclose(scan.teacher_logprobs_at_student_topk, top.values * m[..., None], atol=1e-5)
    assert torch.allclose(scan.student_token_logprobs, ref.gather(-1, ids[:, start:, None]).squeeze(-1) * m,
                          atol=1e-5)
    ent = -(ref.exp() * ref).sum(-1)
    assert torch.allclose(scan.student_entropy, ent * m, atol=1e-5)


MEMORY_PROBE = textwrap.dedent("""
    import json, resource, sys, torch
    torch.set_num_threads(1)
    from lyceum.models.local import build_tiny
    lm = build_tiny("llama", vocab_size=32000, hidden=32, layers=1, heads=2, seed=0)
    ids = torch.randint(4, 32000, (8, 257), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.argv[1] == "chunked":
        out = lm.score(ids, mask, start=1).logprobs
    else:
        with torch.no_grad():
            logits = lm.model(input_ids=ids, attention_mask=mask).logits.float()
            out = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_increase_kb": after - before, "checksum": float(out.sum())}))
""")


def test_chunked_scoring_peaks_lower_than_the_unchunked_reference_at_32k_vocabulary():
    def run(mode):
        out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, mode], capture_output=True, text=True,
                             timeout=120, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    chunked, full = run("chunked"), run("full")
    assert chunked["checksum"] == pytest.approx(full["checksum"], rel=1e-5)
    full_logits_kb = 8 * 256 * 32000 * 4 / 1024  # one B x T x V float32 tensor: 256 MiB
    assert full["peak_increase_kb"] > full_logits_kb
    assert chunked["peak_increase_kb"] < full_logits_kb  # less than even one full logits tensor
    assert chunked["peak_increase_kb"] < full["peak_increase_kb"] / 4


def test_vocabulary_mismatch_is_refused():
    a, b = char_tokenizer("0123456789+="), char_tokenizer("0123456789=+")
    check_same_vocab(a, char_tokenizer("0123456789+="))
    with pytest.raises(UserError, match="tokenizers differ"):
        check_same_vocab(a, b)
    with pytest.raises(UserError, match="only in the teacher"):
        check_same_vocab(a, char_tokenizer("0123456789+=x"))
    student = build_tiny("llama", tokenizer=a, hidden=16, layers=1, heads=2)
    teacher = build_tiny("qwen2", tokenizer=b, hidden=16, layers=1, heads=2)
    with pytest.raises(UserError, match="shared vocabulary"):
        check_pair(student, teacher)


def test_load_local_round_trips_a_saved_model(lm, tmp_path):
    lm.save(tmp_path / "m")
    back = load_local(tmp_path / "m", device="cpu")
    ids = torch.tensor([lm.tokenizer("12+3=45").input_ids])
    assert torch.allclose(back.score(ids).logprobs, lm.score(ids).logprobs, atol=1e-6)
    assert back.tokenizer.get_vocab() == lm.tokenizer.get_vocab()
    assert back.sample(["1="], 8, seed=0).texts == lm.sample(["1="], 8, seed=0).texts


def test_load_local_explains_bad_paths(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_local(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        load_local(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(UserError, match="cannot load"):
        load_local(tmp_path / "empty")


def test_sampled_tokens_follow_the_model_distribution():
    from lyceum.models.local import draw_tokens

    logits = torch.randn(1, 30, generator=torch.Generator().manual_seed(0)) * 2
    tokens, logprobs = draw_tokens(logits.expand(20000, 30).contiguous(), 1.0, 1.0, torch.Generator().manual_seed(1))
    frequency = torch.bincount(tokens, minlength=30).float() / 20000
    assert (frequency - logits.softmax(-1)[0]).abs().max() < 0.01  # ~4 standard errors at 20k draws
    assert torch.allclose(logprobs, logits.log_softmax(-1)[0][tokens], atol=1e-6)


def other_architecture(kind, tok):
    """Tiny random models of other families: absolute positions (GPT-2), q/k norms (Qwen3), and soft-capped
    logits with sliding-window layers (Gemma 2)."""
    import transformers as tf

    V, common = len(tok), {"eos_token_id": 2, "pad_token_id": 0, "bos_token_id": 1}
    torch.manual_seed(0)
    if kind == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=V, n_embd=32, n_layer=1, n_head=2, n_positions=64,
                                                 **common))
    elif kind == "qwen3":
        model = tf.Qwen3ForCausalLM(tf.Qwen3Config(vocab_size=V, hidden_size=32, intermediate_size=64, head_dim=16,
                                                   num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                                   **common))
    else:
        model = tf.Gemma2ForCausalLM(tf.Gemma2Config(vocab_size=V, hidden_size=32, intermediate_size=64, head_dim=16,
                                                     num_hidden_layers=2, num_attention_heads=2,
                                                     num_key_value_heads=1, sliding_window=8, **common))
    from lyceum.models.local import LocalLM

    return LocalLM(model.eval(), tok, torch.device("cpu"))


@pytest.mark.parametrize("kind", ["gpt2", "qwen3", "gemma2"])
def test_sampling_and_scoring_hold_for_other_architectures(kind):
    lm = other_architecture(kind, char_tokenizer(ALPHABET))
    s = lm.sample(["12+3=", "7+8+9="], max_new_tokens=8, n=2, seed=0)
    ids, mask, start = s.sequences()
    ref = reference_logprobs(lm, ids, mask)[:, start - 1: -1].gather(-1, ids[:, start:, None]).squeeze(-1)
    assert torch.allclose(lm.score(ids, mask, start=start).logprobs, ref * s.mask, atol=1e-5)
    assert torch.allclose(s.logprobs, ref * s.mask, atol=1e-5)
    batch = lm.sample(["12+3+45=", "1="], max_new_tokens=6, temperature=0)
    alone = lm.sample(["1="], max_new_tokens=6, temperature=0)
    assert batch.tokens[1, :int(alone.lengths[0])].tolist() == alone.tokens[0, :int(alone.lengths[0])].tolist()


@pytest.mark.parametrize("vocab", [30, 513, 32_000])
def test_the_two_level_inverse_cdf_draws_the_tokens_of_one_cumulative_sum(vocab):
    from lyceum.models.local import _inverse_cdf

    g = torch.Generator().manual_seed(vocab)
    z = 3 * torch.randn(256, vocab, generator=g)
    weights = (z - z.amax(-1, keepdim=True)).exp()
    u = torch.rand(256, 1, generator=g, dtype=torch.float64)
    cdf = weights.cumsum(-1, dtype=torch.float64)
    want = torch.searchsorted(cdf, u * cdf[:, -1:]).squeeze(-1)
    tok, total = _inverse_cdf(weights, u)
    assert torch.equal(tok, want)
    torch.testing.assert_close(total, cdf[:, -1:], rtol=1e-12, atol=0)
