"""Prompt text of several kinds, counted by real BPE tokenizers (bpe-openai: o200k and cl100k ship in
the package, nothing is downloaded), independent of the gateway's bytes/4 estimate.

Text is generated, not read from files, so a seed gives the same prompts on every machine. Each
prompt is a run of whole segments drawn from a fixed pool; a segment's tokens are counted once,
and a prompt's count is the sum (segments start on a fresh line, so a token seldom spans two: at
most one token where two meet, under 1% of a short prompt and 0.1% of a long one, as
tests/routing/test_capacity_benchmark.py checks against counting whole prompts).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import cache

import bpe_openai
import orjson

ENCODINGS = ("o200k_base", "cl100k_base")
KINDS = ("prose", "docs", "code", "logs", "multilingual")

def _words(text: str) -> list[str]:
    return text.split()


_WORDS = _words("""
the of and to a in is it you that he was for on are with as I his they be at one have this from or had
by not word but what some we can out other were all there when up use your how said an each she which
do their time if will way about many then them write would like so these her long make thing see him two
has look more day could go come did number sound no most people my over know water than call first who
may down side been now find any new work part take get place made live where after back little only round
man year came show every good me give our under name very through just form sentence great think say help
low line differ turn cause much mean before move right boy old too same tell does set three want air well
also play small end put home read hand port large spell add even land here must big high such follow act
why ask men change went light kind off need house picture try us again animal point mother world near
build self earth father head stand own page should country found answer school grow study still learn
plant cover food sun four between state keep eye never last let thought city tree cross farm hard start
might story saw far sea draw left late run while press close night real life few north open seem together
next white children begin got walk example ease paper group always music those both mark often letter
until mile river car feet care second book carry took science eat room friend began idea fish mountain
stop once base hear horse cut sure watch color face wood main enough plain girl usual young ready above
ever red list though feel talk bird soon body dog family direct pose leave song measure door product black
short numeral class wind question happen complete ship area half rock order fire south problem piece told
knew pass since top whole king space heard best hour better true during hundred five remember step early
hold west ground interest reach fast verb sing listen six table travel less morning ten simple several
vowel toward war lay against pattern slow center love person money serve appear road map rain rule govern
pull cold notice voice unit power town fine certain fly fall lead cry dark machine note wait plan figure
star box noun field rest correct able pound done beauty drive stood contain front teach week final gave
green quick develop ocean warm free minute strong special mind behind clear tail produce fact street inch
multiply nothing course stay wheel full force blue object decide surface deep moon island foot system busy
test record boat common gold possible plane stead dry wonder laugh thousand ago ran check game shape
equate miss brought heat snow tire bring yes distant fill east paint language among invoice customer
account deployment latency gateway request response tenant budget invoice routing model token context
""")
_TECH = _words("""
request response client server cache token budget tenant route model latency throughput gateway stream
queue worker retry timeout error status config deploy cluster metric ledger invoice account session user
payload header schema field value index table query result event message handler service adapter
""")
_CODE_KEYWORDS = ("def", "return", "if", "else", "for", "in", "while", "import", "from", "class", "with",
                  "as", "try", "except", "raise", "yield", "await", "async", "not", "and", "or", "None",
                  "True", "False", "self", "lambda", "pass", "elif", "assert")
_RUSSIAN = _words("""
привет мир как дела это сообщение для проверки запрос ответ клиент сервер модель токен бюджет счёт
пользователь время работа система данные вопрос помощь документ страница поиск результат ошибка
""")
_SPANISH = _words("""
hola mundo como estas este mensaje para comprobar solicitud respuesta cliente servidor modelo presupuesto
factura usuario tiempo trabajo sistema datos pregunta ayuda documento página búsqueda resultado error
""")
_GERMAN = _words("""
hallo welt wie geht es diese nachricht zur prüfung anfrage antwort kunde server modell budget rechnung
benutzer zeit arbeit system daten frage hilfe dokument seite suche ergebnis fehler über größe straße
""")
# The most common CJK unified ideographs sit early in the block; a few thousand of them.
_CJK_START, _CJK_SPAN = 0x4E00, 3_000

SEGMENTS_PER_KIND = 96
MIN_SEGMENT_CHARS, MAX_SEGMENT_CHARS = 200, 12_000


def _zipf(rng: random.Random, words: list[str], s: float = 1.1) -> str:
    # Inverse-CDF of a continuous power law over ranks: common words much more often.
    u = rng.random()
    rank = int(len(words) ** u ** s) - 1 if s else rng.randrange(len(words))
    return words[min(max(rank, 0), len(words) - 1)]


def _sentence(rng: random.Random, words: list[str]) -> str:
    n = rng.randint(5, 24)
    parts = [_zipf(rng, words) for _ in range(n)]
    if rng.random() < 0.15:
        parts.insert(rng.randrange(len(parts)), str(rng.randint(2, 99_999)))
    text = " ".join(parts)
    return text[0].upper() + text[1:] + rng.choice(".....?!")


def _prose(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        para = " ".join(_sentence(rng, _WORDS) for _ in range(rng.randint(2, 7)))
        out.append(para)
        size += len(para) + 2
    return "\n\n".join(out)


def _docs(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        roll = rng.random()
        if roll < 0.15:
            line = "#" * rng.randint(1, 3) + " " + " ".join(_zipf(rng, _TECH + _WORDS) for _ in range(rng.randint(2, 6))).title()
        elif roll < 0.5:
            line = rng.choice(("- ", "* ", "1. ")) + _sentence(rng, _TECH * 3 + _WORDS)
        elif roll < 0.6:
            line = "| " + " | ".join(_zipf(rng, _TECH) for _ in range(rng.randint(2, 5))) + " |"
        else:
            line = _sentence(rng, _WORDS + _TECH) + " " + _sentence(rng, _WORDS)
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


def _identifier(rng: random.Random) -> str:
    words = [_zipf(rng, _TECH + _WORDS[:200]) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.3:
        return words[0] + "".join(w.title() for w in words[1:])
    return "_".join(words)


def _code(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    size = 0
    depth = 0
    while size < chars:
        roll = rng.random()
        if roll < 0.08 or depth == 0:
            line = f"def {_identifier(rng)}({', '.join(_identifier(rng) for _ in range(rng.randint(0, 3)))}):"
            depth = 1
        elif roll < 0.2:
            line = f"{rng.choice(('if', 'while', 'for'))} {_identifier(rng)} {rng.choice(('in', '==', '>', 'is not'))} {_identifier(rng)}:"
            depth = min(depth + 1, 4)
        elif roll < 0.3:
            line = f"return {_identifier(rng)}({_identifier(rng)}, {rng.randint(0, 4096)})"
            depth = max(depth - 1, 0)
        elif roll < 0.4:
            line = f"# {_sentence(rng, _WORDS)}"
        else:
            line = (f"{_identifier(rng)} = {_identifier(rng)}.{_identifier(rng)}"
                    f"({rng.choice(_CODE_KEYWORDS)}, {rng.random():.3f})")
        line = "    " * depth + line
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


def _logs(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        record = {
            "ts": f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
                  f"{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z",
            "level": rng.choice(("info", "info", "info", "warning", "error", "debug")),
            "event": _identifier(rng),
            "request_id": f"{rng.getrandbits(64):016x}" if rng.random() < 0.5 else f"req_{rng.randint(0, 10**8)}",
            "latency_ms": round(rng.lognormvariate(4, 1), 1),
            "status": rng.choice((200, 200, 200, 201, 400, 429, 500, 503)),
        }
        if rng.random() < 0.4:
            record["message"] = _sentence(rng, _TECH + _WORDS)
        line = orjson.dumps(record).decode()
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


def _multilingual(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        lang = rng.random()
        if lang < 0.4:
            line = "".join(chr(_CJK_START + int(_CJK_SPAN * rng.random() ** 2)) for _ in range(rng.randint(20, 120)))
            line += "。"
        else:
            words = _RUSSIAN if lang < 0.6 else _SPANISH if lang < 0.8 else _GERMAN
            line = _sentence(rng, words)
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


_MAKERS = {"prose": _prose, "docs": _docs, "code": _code, "logs": _logs, "multilingual": _multilingual}


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    json_bytes: int  # what this text adds to the JSON body the gateway estimates from
    tokens: tuple[int, ...]  # per encoding, in ENCODINGS order


@dataclass(frozen=True, slots=True)
class Corpus:
    segments: dict[str, tuple[Segment, ...]]
    seed: int

    def count(self, text: str, encoding: int) -> int:
        return len(_encoding(ENCODINGS[encoding]).encode(text))


@cache
def _encoding(name: str) -> bpe_openai.Encoding:
    return bpe_openai.get_encoding(name)


def token_count(text: str, encoding: str) -> int:
    return len(_encoding(encoding).encode(text))


def build_corpus(seed: int, per_kind: int = SEGMENTS_PER_KIND) -> Corpus:
    rng = random.Random(f"corpus-{seed}")
    encoders = [_encoding(name) for name in ENCODINGS]
    segments: dict[str, tuple[Segment, ...]] = {}
    for kind in KINDS:
        made = []
        for _ in range(per_kind):
            chars = int(math.exp(rng.uniform(math.log(MIN_SEGMENT_CHARS), math.log(MAX_SEGMENT_CHARS))))
            # A segment starts on a fresh line, so the one before it ends its last token.
            text = "\n\n" + _MAKERS[kind](rng, chars)
            made.append(Segment(text=text, json_bytes=len(orjson.dumps(text)) - 2,
                                tokens=tuple(len(e.encode(text)) for e in encoders)))
        segments[kind] = tuple(made)
    return Corpus(segments=segments, seed=seed)
