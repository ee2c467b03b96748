"""API keys: random, shown once, stored as a SHA-256 hash, checked in constant time.

Keys carry 256 bits of randomness, so a fast hash is safe here (no dictionary to attack) and
keeps authentication cheap; the clear prefix lets a key be found and listed without its secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "sk-sy-"
PREFIX_LEN = len(KEY_PREFIX) + 10


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_prefix(key: str) -> str:
    return key[:PREFIX_LEN]


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def matches(key: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def looks_like_key(key: str) -> bool:
    return key.startswith(KEY_PREFIX) and 20 <= len(key) <= 200
