"""Which text is written without spaces between words (Chinese, Japanese): there a "word" is not what
`str.split` finds, so fertility is reported per character and probes mask tokens, not words."""

import re

# Han (CJK unified ideographs, extension A, compatibility), hiragana and katakana
UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def is_unspaced(text: str) -> bool:
    """More than half of the non-space characters are Chinese or Japanese."""
    letters = len(text) - text.count(" ") - text.count("\n")
    return letters > 0 and len(UNSPACED.findall(text)) > letters / 2
