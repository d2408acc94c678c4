#!/usr/bin/python3
"""Writes the seed corpus of tests/fuzz/fuzz_tokenizer_json.c: small
tokenizer.json files written here (valid ones in both merge spellings, with
added tokens, byte fallback and unknown characters; and broken ones), each
optionally followed by a NUL and a text to encode.  No file is copied from
shared/.  Usage: gen_tokenizer_corpus.py OUT_DIR"""
import json
import os
import sys

META = "\u2581"


def tokenizer(vocab, merges, added=(), byte_fallback=True, **model_extra):
    model = {"type": "BPE", "dropout": None, "unk_token": "<unk>", "fuse_unk": True,
             "byte_fallback": byte_fallback, "ignore_merges": False, "vocab": vocab,
             "merges": merges}
    model.update(model_extra)
    return {
        "version": "1.0",
        "added_tokens": [dict(id=i, content=c, single_word=False, lstrip=False, rstrip=False,
                              normalized=False, special=s) for i, c, s in added],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": META},
            {"type": "Replace", "pattern": {"String": " "}, "content": META}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": META}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": model,
    }


def base_vocab(with_bytes=True):
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    if with_bytes:
        for b in range(256):
            vocab["<0x%02X>" % b] = 3 + b
    for piece in [META, "a", "b", "c", "h", "e", "l", "o", "ab", "bc", "abc", META + "a",
                  "he", "ll", "hell", "hello", META + "hello", "é"]:
        vocab.setdefault(piece, len(vocab))
    return vocab


MERGES = ["b c", "a b", "a bc", META + " a", "h e", "l l", "he ll", "hell o", META + " hello"]
ADDED = [(1000, "<image>", True), (1001, "<fake_token_around_image>", True),
         (1002, "<end_of_utterance>", True), (1003, "<x><y>", False)]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    files = {}

    def put(name, obj, text=None):
        data = obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode()
        if text is not None:
            data += b"\0" + text
        files[name] = data

    v = base_vocab()
    put("valid_string_merges", tokenizer(v, MERGES, ADDED),
        "hello abc<image><image>bc é\u00e9\U0001F600 x<x><y>".encode())
    put("valid_pair_merges", tokenizer(v, [m.split(" ") for m in MERGES], ADDED),
        "  hello\n\tworld<end_of_utterance>".encode())
    put("valid_no_bytes_unk", tokenizer(base_vocab(False), MERGES, byte_fallback=False),
        "xyz hello qq".encode())
    put("valid_invalid_utf8_text", tokenizer(v, MERGES, ADDED), b"ab\xff\xfe<image")
    put("valid_ids_as_text", tokenizer(v, MERGES, ADDED), bytes(range(0, 256)))
    put("valid_no_post_processor", dict(tokenizer(v, MERGES), post_processor=None), b"abc")
    put("valid_empty_text", tokenizer(v, MERGES, ADDED), b"")
    put("valid_long_word", tokenizer(v, MERGES), ("abc" * 3000).encode())

    put("bad_merge_missing_piece", tokenizer(v, MERGES + ["q r"]), b"abc")
    put("bad_merge_three_parts", tokenizer(v, ["a b c"]), b"abc")
    put("bad_huge_id", tokenizer(dict(v, big=2 ** 31), MERGES), b"abc")
    put("bad_negative_id", tokenizer(dict(v, neg=-1), MERGES), b"abc")
    a_id = '"a": %d' % v["a"]
    dup = json.dumps(tokenizer(v, MERGES)).replace(a_id, a_id + ', "a2": %d' % v["a"])
    put("bad_duplicate_id", dup.encode(), b"abc")
    put("bad_normalizer", dict(tokenizer(v, MERGES), normalizer=None), b"abc")
    put("bad_metaspace_pretok", dict(tokenizer(v, MERGES),
                                     pre_tokenizer={"type": "Metaspace", "replacement": META}))
    put("bad_decoder", dict(tokenizer(v, MERGES), decoder={"type": "ByteLevel"}))
    put("bad_added_normalized", tokenizer(v, MERGES, ADDED).copy() | {
        "added_tokens": [{"id": 5000, "content": "<q>", "normalized": True}]})
    put("bad_template_id", json.dumps(tokenizer(v, MERGES)).replace('"ids": [1]', '"ids": [99999]')
        .encode())
    put("bad_wordpiece", tokenizer(v, MERGES, continuing_subword_prefix="##"))
    put("bad_truncated", json.dumps(tokenizer(v, MERGES)).encode()[:700])
    put("bad_deep_nesting", b"[" * 5000 + b"]" * 5000)
    put("bad_not_json", b"\x89PNG\r\n\x1a\n not a tokenizer")
    put("bad_empty", b"")

    for name, data in sorted(files.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
