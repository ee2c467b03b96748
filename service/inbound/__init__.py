"""Inbound adapters: each turns one client-facing wire format into a Chat Completions request and back."""
