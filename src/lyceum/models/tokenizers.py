"""Character-level tokenizers for tiny models (tests and the lab).

A real HF fast tokenizer (``PreTrainedTokenizerFast``) whose vocabulary is a fixed alphabet, one token per
character, plus ``<pad>``, ``<bos>``, ``<eos>`` and ``<unk>``. It saves and loads with ``save_pretrained`` /
``AutoTokenizer.from_pretrained`` like any other, so code written against it works on real checkpoints.

    tok = char_tokenizer("0123456789+=\\n ")
    tok("12+3=").input_ids        # [bos, '1', '2', '+', '3', '=']  (add_bos=True prepends <bos>)
    tok.decode(ids, skip_special_tokens=True)

Like Llama tokenizers it prepends ``<bos>`` when encoding with ``add_special_tokens=True`` (the default) and never
appends ``<eos>``; encode a completion with ``add_special_tokens=False`` and add ``tok.eos_token_id`` yourself.
"""

from __future__ import annotations

from lyceum.errors import UserError

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


def char_tokenizer(alphabet: str | list[str], *, add_bos: bool = True, model_max_length: int = 4096):
    """Build a character-level ``PreTrainedTokenizerFast``: ids 0-3 are pad/bos/eos/unk, then one id per character.

    ``alphabet`` order fixes the ids, so the same alphabet always gives the same tokenizer (students and
    teachers built from it share a vocabulary). Duplicate characters are ignored after their first occurrence.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = list(dict.fromkeys(alphabet))
    if not chars:
        raise UserError("the tokenizer alphabet is empty; give at least one character")
    bad = [c for c in chars if len(c) != 1]
    if bad:
        raise UserError(f"the tokenizer alphabet must hold single characters, got {bad[0]!r}")
    clash = [c for c in chars if c in SPECIAL_TOKENS]
    if clash:
        raise UserError(f"{clash[0]!r} is reserved for a special token")

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for c in chars:
        vocab[c] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # every character (newlines included) is its own "word"; Fuse joins them back without spaces
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"(?m)."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tk.add_special_tokens(list(SPECIAL_TOKENS))
    if add_bos:
        tk.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        padding_side="left", clean_up_tokenization_spaces=False, model_max_length=model_max_length)
