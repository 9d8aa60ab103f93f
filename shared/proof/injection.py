"""A second line of defence against proof that tries to instruct the grader.

The model is told to flag such proof, but a model can be talked round. This
scans the proof's text, and the printable strings of binary proof (image
metadata such as captions, a PDF's text layer, inflated when compressed), for
phrases aimed at a grader. A hit means the proof can never pass on the AI's
word alone.
"""

from __future__ import annotations

import re
import unicodedata
import zlib

from shared.proof.capture import Proof

PATTERNS = [
    r"ignore\s+(all\s+|any\s+|the\s+)?(previous|prior|above|earlier|preceding)\s+(instructions|rules|prompts?)",
    r"disregard\s+(all\s+|any\s+|the\s+)?(previous\s+|prior\s+|above\s+)?(rubric|instructions|rules)",
    r"(grade|mark|score|rate|evaluate)\s+(this|me|it|the\s+submission)\s+as\s+(a\s+)?(pass|passed|passing|complete)",
    r"\bsystem\s+(prompt|instruction|message)\b",
    r"\bnew\s+instructions?\b",
    r"\byou\s+are\s+(now\s+)?(an?\s+|the\s+)?(grader|ai|assistant|language\s+model|reviewer)\b",
    r"\b(dear|attention|note\s+to\s+the)\s+(grader|ai|reviewer|model)\b",
    r"[\"']?passed[\"']?\s*[:=]\s*true",
    r"[\"']?instructions_in_proof[\"']?\s*[:=]",
    r"\bconfidence[\"']?\s*[:=]\s*(1(\.0+)?|0?\.9\d*)\b",
    r"\b(respond|answer|reply)\s+(only\s+)?with\b",
    r"\bthe\s+rubric\s+(has\s+been|is)\s+(met|satisfied)\b.*\b(grader|ai|model)\b",
]
_COMPILED = re.compile("|".join(f"(?:{p})" for p in PATTERNS), re.IGNORECASE | re.DOTALL)
_PRINTABLE = re.compile(rb"[\x20-\x7e\t\r\n]{6,}")
_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.DOTALL)


def _strings(data: bytes) -> str:
    found = [m.group(0) for m in _PRINTABLE.finditer(data)]
    for stream in _STREAM.finditer(data):
        try:
            inflated = zlib.decompress(stream.group(1))
        except zlib.error:
            continue
        found.extend(m.group(0) for m in _PRINTABLE.finditer(inflated))
    # PDF text operators keep words in (...) strings; joining them restores phrases split across operators.
    text = b" ".join(found).decode("latin-1")
    return text + " " + " ".join(re.findall(r"\(([^()]*)\)", text))


# Letters from other scripts that render like Latin ones (Unicode's confusables, the common part).
_CONFUSABLES = str.maketrans(
    "аАвВеЕёЁһНіІїЇјЈкКмМоОрРсСтТуУхХѕЅԁԛԝɡαΑβΒεΕηΗιΙκΚμΜνΝοΟρΡτΤυΥχΧζΖ",
    "aAbBeEeEhHiIiIjJkKmMoOpPcCtTyYxXsSdqwgaABBeEnHiIkKuMvNoOpPtTuYxXzZ",
)


def normalise(text: str) -> str:
    """What the text says to a reader: compatibility forms folded (fullwidth, ligatures), format
    characters removed (zero-width, bidi controls, soft hyphens), accents stripped, look-alike
    letters from other scripts mapped to Latin."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return text.translate(_CONFUSABLES)


def suspicious(proof: Proof) -> bool:
    """True when the proof's text or embedded strings speak to the grader."""
    corpus = proof.text or ""
    for data, _ in proof.blobs:
        corpus += "\n" + _strings(data)
    return bool(_COMPILED.search(normalise(corpus)))
