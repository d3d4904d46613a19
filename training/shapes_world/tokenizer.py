"""CLIP-format BPE tokenizer files (vocab.json, merges.txt) for the shapes-world vocabulary.

The files have the layout of OpenAI CLIP's tokenizer, so the same loader serves Stable
Diffusion and the embedded model: the 256 byte symbols, the same with the end-of-word marker
"</w>", the learned merges, then <|startoftext|> and <|endoftext|>. Merges are learned from the
grammar's words until every word is a single token, so each word of a caption is one token and
Prompt-to-Prompt's word rules apply token for token; any other text still encodes, byte by byte.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from .world import COLOURS, PATTERNS, POSITIONS, SHAPES, SIZES

END_OF_WORD = "</w>"
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"


def grammar_words() -> list[str]:
    words = {"a", "an", "and", "on", "background"} | set(COLOURS) | set(SHAPES) | set(PATTERNS) | set(SIZES)
    for phrase in POSITIONS:
        words |= set(phrase.split())
    return sorted(words)


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes that GPT-2 and CLIP use: printable Latin-1 bytes
    stand for themselves, the others for code points from 256 on, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    symbols = {}
    extra = 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """Greedy BPE: merge the most frequent adjacent pair (ties by symbol order) until every word
    is one symbol."""
    spelled = {w: list(w[:-1]) + [w[-1] + END_OF_WORD] for w in words}
    merges = []
    while any(len(s) > 1 for s in spelled.values()):
        counts = Counter()
        for symbols in spelled.values():
            for pair in zip(symbols, symbols[1:]):
                counts[pair] += 1
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        for word, symbols in spelled.items():
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            spelled[word] = merged
    return merges


def write_tokenizer(directory: Path) -> int:
    """Writes the tokenizer folder; returns the vocabulary size."""
    directory.mkdir(parents=True, exist_ok=True)
    base = byte_symbols()
    merges = learn_merges(grammar_words())
    tokens = base + [s + END_OF_WORD for s in base] + ["".join(m) for m in merges] + [START_TOKEN, END_TOKEN]
    vocab = {token: i for i, token in enumerate(tokens)}
    assert len(vocab) == len(tokens), "duplicate tokens"
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    config = {
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
        "bos_token": START_TOKEN, "eos_token": END_TOKEN, "unk_token": END_TOKEN, "pad_token": END_TOKEN,
        "clean_up_tokenization_spaces": True, "errors": "replace", "add_prefix_space": False,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {"bos_token": START_TOKEN, "eos_token": END_TOKEN, "unk_token": END_TOKEN, "pad_token": END_TOKEN}
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    return len(tokens)
