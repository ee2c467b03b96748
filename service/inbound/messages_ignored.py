"""What a Messages request may carry that Switchyard accepts and drops, and why.

`IGNORED_FIELDS` is the one list (the README quotes it). Each key names a field the way Anthropic's
docs do; the request translator records every concrete path it drops (`MessagesRequest.ignored`)
under one of these keys, so nothing is dropped without a reason written here.

What is *not* here is refused with a 400 naming it, because dropping it would change what the
request means: `document`, `search_result`, server-tool and container blocks, image `file`
sources, server tools (`web_search_*`, `code_execution_*`, ...), `mcp_servers`, `compaction` and
`thread`. Claude Code sends none of those by default.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

IGNORED_FIELDS: Final = MappingProxyType(
    {
        "cache_control": (
            "Prompt-cache breakpoints (top level, on system and message blocks, on tools). Baseten "
            "caches prompt prefixes by itself and reports cached tokens; there is nothing to mark."
        ),
        "context_management": (
            "Server-side context editing (clearing old thinking or tool results). The conversation "
            "is forwarded as sent; chat templates already drop reasoning from earlier turns."
        ),
        "output_config.effort": (
            "Effort is forwarded as `reasoning.effort` only with adaptive thinking; with thinking "
            "disabled or absent it would switch reasoning on for opt-in models, and with a "
            "`budget_tokens` the budget wins."
        ),
        "output_config.task_budget": "Anthropic's agentic task budget has no open-model counterpart.",
        "thinking.display": (
            "Thinking display (summarized / omitted): open models return their reasoning verbatim "
            "and it is passed on as `thinking` blocks."
        ),
        "thinking.block_binding": "Binding of thinking blocks to Anthropic signatures; nothing to bind.",
        "thinking.signature": (
            "Signatures of earlier thinking blocks only Anthropic can verify; the thinking text "
            "itself is passed on as the assistant's `reasoning_content`."
        ),
        "redacted_thinking": (
            "Encrypted thinking from an Anthropic model: no other model can read it. Claude Code "
            "sends it back when it switches from a Claude model to this gateway mid-conversation."
        ),
        "citations": (
            "Citations on text blocks from earlier turns: the text is kept, the citation metadata "
            "has no Chat Completions field."
        ),
        "system.billing_header": (
            "The `x-anthropic-billing-header: ...` text block Claude Code puts first in `system`. "
            "It is Anthropic's attribution, not an instruction, and it carries a per-build value "
            "that would break the upstream's prefix cache."
        ),
        "metadata": ("Metadata keys other than `user_id` (which becomes `user`): Anthropic defines none."),
        "tool_choice": (
            "`tool_choice` of type auto or none with no `tools`: it asks for nothing, and a Chat "
            "Completions body may not carry it without tools."
        ),
        "top_k": "`top_k: 0` means no top-k cut-off, which is also what leaving it out means.",
        "tools.defer_loading": (
            "Deferred loading belongs to Anthropic's server-side tool search; every tool is sent."
        ),
        "tools.eager_input_streaming": (
            "Fine-grained tool input streaming: tool input is streamed once the call is complete."
        ),
        "tools.input_examples": "Example inputs for a tool have no Chat Completions field.",
        "tools.allowed_callers": "Programmatic tool calling runs in Anthropic's code container.",
        "tool_use.caller": "Which Anthropic server tool made an earlier call; every call here is direct.",
        "toolset_name": "Anthropic toolset grouping on earlier tool calls and results.",
        "image.transformations": "Anthropic's server-side image resizing; images are sent as given.",
        "container": "Anthropic's code-execution container id: no container runs here.",
        "service_tier": "Anthropic's priority capacity; routing and budgets decide capacity here.",
        "speed": "Anthropic's fast mode; routing picks the route.",
        "inference_geo": "Anthropic's inference region; the route decides where inference runs.",
        "diagnostics": "Anthropic's prompt-cache diagnostics.",
        "fallbacks": (
            "Anthropic's refusal fallbacks to other Claude models; Switchyard's own fallback "
            "across routes applies instead."
        ),
        "fallback_credit_token": "Anthropic's credit for a refused request's cache.",
        "billing_policy": "Anthropic billing attribution; the tenant of the API key is billed.",
        "user_profile_id": "Anthropic user profiles; the tenant of the API key is billed.",
        "workspace_id": "Anthropic workspaces; the API key decides the tenant.",
        "mcp_servers": "An empty `mcp_servers` list asks for nothing (a non-empty one is refused).",
    }
)
