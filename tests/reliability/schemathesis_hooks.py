"""A check schemathesis runs beside its own (loaded through SCHEMATHESIS_HOOKS).

A chat body that the published schema admits may still be refused with a 400 when the model it
names cannot serve it (images sent to a text-only model, an effort the model does not take, more
context than it has, a provider filter that leaves no route): the schema cannot encode each
model's capabilities. schemathesis.toml lets those 400s through for the two chat operations; this
check makes sure that is all they are, so a body the schema admits is never refused by validation.
"""

from __future__ import annotations

import json

import schemathesis

CHAT_OPERATIONS = ("/v1/chat/completions", "/v1/quote")
# The codes of routing's refusals (service.routing.no_route): the body is valid, the model is not able.
ROUTING_REFUSALS = {"unsupported_feature", "context_length_exceeded", "no_route"}


@schemathesis.check
def chat_refusals_are_routing_refusals(ctx, response, case) -> None:
    meta = case.meta
    if case.path not in CHAT_OPERATIONS or meta is None or not meta.generation.mode.is_positive:
        return
    if response.status_code != 400:
        return
    code = json.loads(response.content)["error"]["code"]
    if code not in ROUTING_REFUSALS:
        raise AssertionError(f"A body the schema admits was refused by validation: {response.text[:500]}")
    return
