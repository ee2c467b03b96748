"""Inbound adapters: each turns one client API's wire format into a Chat Completions body and back.

`messages_*` and `anthropic_errors` serve Anthropic's Messages API (`POST /v1/messages`).
"""
