"""Webhook signatures: what the gateway signs, the README's verifier accepts, and nothing else."""

from __future__ import annotations

import re
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from service.alerts.signing import generate_secret, sign, signature, verify

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify():
    """The verification snippet the README's Alerts section gives receivers, run as written."""
    section = README.read_text("utf-8").split("## Alerts", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]


secrets_ = st.text(min_size=1, max_size=64)


@given(secret=secrets_, body=st.binary(max_size=2048))
def test_what_is_signed_verifies_here_and_with_the_readme_snippet(secret, body):
    header = sign(secret, body)
    assert verify(secret, header, body)
    assert readme_verify()(secret, header, body)


@given(secret=secrets_, body=st.binary(min_size=1, max_size=512), index=st.integers(min_value=0),
       flip=st.integers(1, 255))
def test_a_changed_body_fails(secret, body, index, flip):
    header = sign(secret, body)
    i = index % len(body)
    tampered = body[:i] + bytes([body[i] ^ flip]) + body[i + 1:]
    assert not verify(secret, header, tampered)
    assert not readme_verify()(secret, header, tampered)


def test_wrong_secret_stale_or_malformed_headers_fail():
    secret, body = generate_secret(), b'{"id":"evt"}'
    assert secret.startswith("whsec_") and len(secret) > 40 and generate_secret() != secret
    now = int(time.time())
    check = readme_verify()
    assert not verify(generate_secret(), sign(secret, body), body)
    stale = sign(secret, body, now - 301)
    assert not verify(secret, stale, body) and not check(secret, stale, body)
    assert verify(secret, sign(secret, body, now - 299), body)
    for header in ("", "t=abc,v1=00", f"v1={signature(secret, now, body)}", f"t={now}", "garbage"):
        assert not verify(secret, header, body)
        assert not check(secret, header, body)


def test_a_second_v1_signature_is_accepted_as_stripe_does():
    secret, body = generate_secret(), b"{}"
    t = int(time.time())
    header = f"t={t},v1={'0' * 64},v1={signature(secret, t, body)}"
    assert verify(secret, header, body) and readme_verify()(secret, header, body)
    # The signed bytes are exactly "<t>.<body>", keyed with the whole secret string.
    import hashlib
    import hmac

    assert signature(secret, t, body) == hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
