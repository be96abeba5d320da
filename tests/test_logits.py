"""The chunked-logits helpers' speed paths: the blocked top-k and the reused CPU workspace."""

import torch

from lyceum.train.logits import TOPK_BLOCK, topk, workspace


def test_blocked_topk_equals_torch_topk_on_large_rows_with_a_partial_last_block():
    g = torch.Generator().manual_seed(0)
    for vocab in (64 * TOPK_BLOCK, 64 * TOPK_BLOCK + 37):  # blocked path; the second has a short last block
        z = torch.randn(7, vocab, generator=g)
        z[3, -1] = 100.0  # the largest value of a row sits in the short last block
        for k in (1, 16):
            values, ids = topk(z, k)
            ref = z.topk(k, -1)
            assert torch.equal(values, ref.values) and torch.equal(ids, ref.indices)


def test_blocked_topk_with_ties_returns_the_top_values_at_ids_holding_them():
    z = torch.zeros(2, 64 * TOPK_BLOCK)
    z[0, ::97] = 1.0  # many tied maxima spread over the blocks
    values, ids = topk(z, 16)
    assert torch.equal(values, z.topk(16, -1).values)
    assert torch.equal(z.gather(1, ids), values)
    assert all(len(set(row.tolist())) == 16 for row in ids)  # no id twice


def test_cpu_workspace_is_reused_and_grows_when_a_larger_one_is_asked_for():
    a = workspace(1000, "cpu")
    b = workspace(500, "cpu")
    assert b.data_ptr() == a.data_ptr() and b.numel() == 500
    c = workspace(10**6, "cpu")
    assert c.numel() == 10**6 and workspace(10, "cpu").data_ptr() == c.data_ptr()
