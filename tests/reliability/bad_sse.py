"""Hypothesis strategies for SSE byte streams: events written every way the specification allows."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from hypothesis import strategies as st

ENDINGS = (b"\n", b"\r\n", b"\r")

# A data line's text: anything but the line-ending characters.
line_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20)


@dataclass(frozen=True)
class Encoded:
    raw: bytes
    payloads: list[bytes]  # what a parser must return, in order


@st.composite
def noise_line(draw) -> bytes:
    """A line that carries no data: a comment or another field."""
    kind = draw(st.sampled_from(["comment", "event", "id", "retry", "other"]))
    text = draw(line_text).encode()
    if kind == "comment":
        return b":" + text
    if kind == "other":
        return b"x-unknown: " + text
    return kind.encode() + b": " + text


@st.composite
def data_line(draw, text: str) -> bytes:
    value = text.encode()
    if not value:
        return draw(st.sampled_from([b"data", b"data:", b"data: "]))
    if value.startswith(b" "):
        return b"data: " + value  # one leading space is the separator; the rest is data
    return draw(st.sampled_from([b"data: ", b"data:"])) + value


@st.composite
def event_lines(draw, payload: str | None, *, trailing_noise: bool = True) -> list[bytes]:
    """The lines of one event (without its blank line); no data lines when payload is None."""
    lines: list[bytes] = []
    for text in ([] if payload is None else payload.split("\n")):
        lines.extend(draw(st.lists(noise_line(), max_size=2)))
        lines.append(draw(data_line(text)))
    if trailing_noise:
        lines.extend(draw(st.lists(noise_line(), max_size=2)))
    return lines


def _join(draw, lines: list[bytes], *, terminate_last: bool) -> bytes:
    """Lines joined with random endings. A CR ending followed by an empty line ended by LF would
    read as one CRLF, merging two line ends into one, so that combination is avoided."""
    out = bytearray()
    previous = b""
    for index, line in enumerate(lines):
        last = index == len(lines) - 1
        if last and not terminate_last:
            out += line
            break
        choices = ENDINGS if not (previous == b"\r" and not line) else (b"\r\n", b"\r")
        ending = draw(st.sampled_from(choices))
        out += line + ending
        previous = ending
    return bytes(out)


payload_text = st.lists(line_text, min_size=1, max_size=3).map("\n".join)


@st.composite
def sse_streams(draw) -> Encoded:
    """Whole streams: each event ends with its blank line; some events carry no data at all."""
    payloads = draw(st.lists(st.one_of(st.none(), payload_text), max_size=8))
    lines: list[bytes] = []
    for payload in payloads:
        lines.extend(draw(event_lines(payload)))
        lines.append(b"")
        lines.extend([b""] * draw(st.integers(0, 2)))  # extra blank lines dispatch nothing
    raw = _join(draw, lines, terminate_last=True)
    return Encoded(raw, [p.encode() for p in payloads if p is not None])


@st.composite
def cut_streams(draw) -> Encoded:
    """A stream whose last event lost its blank line, and maybe the ending of its last line too
    (then that line is a `data:` line, the form a cut stream's last line is recovered from)."""
    head = draw(sse_streams())
    last = draw(payload_text)
    terminated = draw(st.booleans())
    lines = draw(event_lines(last, trailing_noise=terminated))
    if not terminated:
        text = last.split("\n")[-1].encode()
        prefix = b"data: " if text.startswith(b" ") else draw(st.sampled_from([b"data:", b"data: "]))
        lines[-1] = prefix + text
    return Encoded(head.raw + _join(draw, lines, terminate_last=terminated), [*head.payloads, last.encode()])


@st.composite
def chunked(draw, raw: bytes) -> list[bytes]:
    """The bytes cut at arbitrary points, as reads from a socket would be."""
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    bounds = [0, *cuts, len(raw)]
    return [raw[a:b] for a, b in pairwise(bounds)]
