#!/usr/bin/env python3
"""Writes the tokenizer test corpus: one JSON string per line, deterministic (fixed seed).

Usage: python3 tools/make_tokenizer_corpus.py OUT.jsonl [--count N]

Covers English prose, code in several languages, CJK, Arabic, Hindi, Thai, Cyrillic, Greek, emoji
(skin tones, ZWJ sequences, flags), combining marks where NFC matters, long digit runs, runs of
spaces/tabs/CR/LF, contractions in upper and mixed case, special-token text, very long words, empty
and whitespace-only strings, and random mixtures of all of them.
"""
import argparse
import json
import random

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times, it was the age of wisdom.",
    "In 1492, Columbus sailed the ocean blue; by 1500 the world had changed.",
    "She said, \"Don't worry -- we'll be there by 5:30 p.m.\" and hung up.",
    "Mixture-of-Experts models route each token to a few experts out of many.",
    "Prices rose 3.5% year-over-year (from $1,234.56 to $1,277.77).",
    "Dr. Smith's lab isn't open on weekends; they've closed it since March.",
    "E-mail me at someone@example.com or visit https://example.org/path?q=1&r=2#frag.",
    "Hello, World!!! What's up??? ... ok.",
    "Naïve café owners in Zürich serve crème brûlée à la carte.",
]
CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "#include <stdio.h>\n\nint main(void) {\n\tprintf(\"hello %d\\n\", 42);\n\treturn 0;\n}\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "const add = (a, b) => a + b;\nexport default function App() { return <div className=\"x\">{add(1,2)}</div>; }\n",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
    "for i in $(seq 1 10); do echo \"$i\" >> out.txt; done && cat out.txt | wc -l",
    "template <typename T>\nstd::vector<T> f(const std::vector<T>& xs) { return {xs.rbegin(), xs.rend()}; }",
    "<html>\n  <body>\n    <p class='a'>Text &amp; more</p>\n  </body>\n</html>",
    "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}",
    "public static void main(String[] args) { System.out.println(\"x\" + args.length); }",
    "    x = [i**2 for i in range(100) if i % 3 == 0]  # squares\r\n\ty = {k: v for k, v in d.items()}",
]
CJK = ["我爱自然语言处理。今天天气很好！", "東京は日本の首都です。", "한국어 텍스트 처리는 재미있다.",
       "漢字、ひらがな、カタカナを混ぜた文章です。", "中文，English 混合 text，123个数字。"]
ARABIC = ["مرحبا بالعالم، كيف حالك اليوم؟", "اللغة العربية جميلة جدا ١٢٣٤٥"]
HINDI = ["नमस्ते दुनिया, आप कैसे हैं?", "हिन्दी में लिखा गया वाक्य।"]
THAI = ["สวัสดีครับ ยินดีที่ได้รู้จัก", "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ"]
CYRILLIC = ["Привет, мир! Как дела?", "Съешь же ещё этих мягких французских булок, да выпей чаю."]
GREEK = ["Γειά σου Κόσμε! Τι κάνεις;", "Ξεσκεπάζω τὴν ψυχοφθόρα βδελυγμία."]
EMOJI = ["👍", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷🇯🇵🇺🇸", "❤️", "🤦🏼‍♂️", "😀😃😄😁", "✌🏿", "🧑🏻‍🤝‍🧑🏿"]
# Decomposed forms that NFC composes, and marks with no precomposed form.
COMBINING = ["e\u0301", "A\u030a", "n\u0303o", "cafe\u0301", "u\u0308ber", "\u1100\u1161\u11a8",
             "o\u0308\u0304", "q\u0307\u0323", "\u212b", "\u2126", "e\u0301\u0301", "\u0958",
             "Ω", "fi\ufb01", "x\u0300\u0301\u0302", "\u0041\u030A\u0301"]
CONTRACTIONS = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll",
                "'LL", "'Ll", "'d", "'D", "'ſ"]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|im_start|>system\n", "<tool_call>",
           "</tool_call>", "<think>", "</think>", "<tool_response>", "<|fim_prefix|>",
           "<|vision_pad|>", "<|im_end", "<|im_start|", "< |im_end|>", "<|IM_END|>", "<thinking>"]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\r", "\n\n\n", " \n ", "\t\t ", "    ", "\u00a0",
          "\u3000", "\u2009", "\u2028", "\u0085", "\u180e", "\ufeff", "\x0b", "\x0c"]
WORDS = ("the of and to in is that it for was on are as with his they at be this from have or "
         "by one had not but what all were when we there can an your which their said if do will "
         "each about how up out them then she many some so these would other into has more her two "
         "like him see time could no make than first been its who now people my made over did down "
         "only way find use may water long little very after words called just where most know").split()


def digits(r):
    return "".join(r.choice("0123456789") for _ in range(r.randint(1, 40)))


def random_unicode(r, n):
    out = []
    for _ in range(n):
        block = r.choice([(0x20, 0x7e), (0xa0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff),
                          (0x590, 0x6ff), (0x900, 0x97f), (0xe00, 0xe7f), (0x3040, 0x30ff),
                          (0x4e00, 0x9fff), (0xac00, 0xd7a3), (0x1f300, 0x1f6ff), (0x300, 0x36f),
                          (0x2000, 0x206f), (0x1d400, 0x1d7ff), (0xff00, 0xffef)])
        out.append(chr(r.randint(*block)))
    return "".join(out)


def fragment(r):
    kind = r.randrange(16)
    if kind == 0: return r.choice(PROSE)
    if kind == 1: return r.choice(CODE)
    if kind == 2: return r.choice(CJK)
    if kind == 3: return r.choice(ARABIC + HINDI + THAI)
    if kind == 4: return r.choice(CYRILLIC + GREEK)
    if kind == 5: return r.choice(EMOJI)
    if kind == 6: return r.choice(COMBINING)
    if kind == 7: return r.choice(WORDS) + r.choice(CONTRACTIONS)
    if kind == 8: return r.choice(SPECIAL)
    if kind == 9: return "".join(r.choice(SPACES) for _ in range(r.randint(1, 6)))
    if kind == 10: return digits(r)
    if kind == 11: return " ".join(r.choice(WORDS) for _ in range(r.randint(1, 12)))
    if kind == 12: return random_unicode(r, r.randint(1, 12))
    if kind == 13: return r.choice(WORDS).upper() + r.choice(CONTRACTIONS).upper()
    if kind == 14: return "".join(r.choice("!@#$%^&*()[]{};:,.<>/?\\|`~-_=+'\"") for _ in range(r.randint(1, 8)))
    return r.choice(WORDS).capitalize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=2400)
    args = ap.parse_args()
    r = random.Random(20240611)
    corpus = ["", " ", "  ", "\n", "\t", "\r\n", " \t\r\n ", "\n\n", "a", "'", "''s"]
    # Each category on its own.
    for group in (PROSE, CODE, CJK, ARABIC, HINDI, THAI, CYRILLIC, GREEK, EMOJI, COMBINING, SPECIAL):
        corpus.extend(group)
    for c in CONTRACTIONS:
        corpus += ["it" + c, "IT" + c.upper(), "We" + c + " go", c, " " + c, "x" + c + c]
    for s in SPACES:
        corpus += [s, "a" + s + "b", s * 5 + "x", "x" + s * 5, s * 3]
    corpus += ["1234567890" * k for k in (1, 3, 10)] + ["3.14159265358979", "1,000,000", "v1.2.3"]
    corpus += ["a" * 1000, "supercalifragilisticexpialidocious" * 20, "🙂" * 200, "中" * 500,
               "ab" * 700, " " * 300, "\n" * 100, "é" * 300, "x\u0301" * 200,
               "Pneumonoultramicroscopicsilicovolcanoconiosis", "-" * 257, "=" * 80 + "\n"]
    while len(corpus) < args.count:
        pieces = [fragment(r) for _ in range(r.randint(1, 8))]
        sep = r.choice(["", " ", "\n", "", " "])
        corpus.append(sep.join(pieces))
    with open(args.out, "w", encoding="utf-8") as f:
        for s in corpus:
            f.write(json.dumps(s, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main()
