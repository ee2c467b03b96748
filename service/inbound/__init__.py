"""Inbound adapters: each turns one client API's wire format into a Chat Completions body and back.

`messages_*` and `anthropic_errors` serve Anthropic's Messages API (`POST /v1/messages`);
`responses_*` serve OpenAI's Responses API (`POST /v1/responses`) and its stored responses.
"""
