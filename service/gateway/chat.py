"""One chat request end to end: plan, attempt routes in order, relay, meter every attempt."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import structlog

from service.chat.sse import DONE_EVENT, encode_chunk
from service.errors import GatewayError, UpstreamError
from service.gateway.attempts import Attempt
from service.gateway.context import RequestContext
from service.gateway.relay import ChunkShaper, add_cost
from service.observability.metrics import status_class
from service.routing.estimate import context_estimate
from service.routing.needs import Needs, derive_needs
from service.routing.no_route import no_route_error
from service.routing.planner import Candidate, Plan, Policy

log = structlog.get_logger("switchyard.request")


def body_for_route(body: dict[str, Any], candidate: Candidate) -> dict[str, Any]:
    out = dict(body)
    out["model"] = candidate.route.model
    if candidate.route.front_end != "baseten" and "max_completion_tokens" in out:
        # The marketplaces' input schemas only know max_tokens.
        out.setdefault("max_tokens", out.pop("max_completion_tokens"))
    return out


class ChatGateway:
    def __init__(self, rt: Any) -> None:
        self.rt = rt

    # ---- planning -------------------------------------------------------------------------
    async def plan(self, ctx: RequestContext, body: dict[str, Any], view: Any) -> tuple[Needs, Plan]:
        needs = derive_needs(body, view)
        p = ctx.principal
        policy = Policy(allowed_models=p.allowed_models, denied_front_ends=p.denied_front_ends, tenant=p.tenant_id)
        planner = self.rt.planner
        plan = planner.plan(view.model, needs, view.provider, policy, fallbacks=view.models)
        quotes = await self._quotes(plan, body)
        if quotes:
            plan = planner.plan(view.model, needs, view.provider, policy, fallbacks=view.models, quotes=quotes)
        return needs, plan

    async def _quotes(self, plan: Plan, body: dict[str, Any]) -> dict[str, Decimal]:
        """Orthogonal dry runs, only where a quote can change the choice: a quoted route that may
        be tried on an estimated price, or one whose quote is its only possible price."""
        adapter = self.rt.adapters.get("orthogonal")
        if adapter is None:
            return {}
        routes = [c.route for c in plan.candidates[: self.rt.settings.max_attempts]
                  if c.cost_basis == "estimated_quote"]
        routes += [self.rt.catalog.find_route("orthogonal", e.route.split(":", 1)[1])
                   for e in plan.excluded if e.code == "price_unknown" and e.route.startswith("orthogonal:")]
        routes = [r for r in routes if r is not None]
        if not routes:
            return {}
        started = time.perf_counter()
        prices = await asyncio.gather(*(adapter.quote(r, {**body, "model": r.model}) for r in routes))
        self.rt.metrics.quote_seconds.observe(time.perf_counter() - started)
        return {r.name: q for r, q in zip(routes, prices, strict=True) if q is not None}

    # ---- entry point ----------------------------------------------------------------------
    async def handle(self, ctx: RequestContext, body: dict[str, Any], view: Any):
        needs, plan = await self.plan(ctx, body, view)
        if not plan.candidates:
            self.rt.metrics.rejections.labels("no_route").inc()
            raise no_route_error(plan, self.rt.catalog)
        candidates = plan.candidates[: self.rt.settings.max_attempts]
        worst_tokens = context_estimate(needs.base_prompt_tokens, 1.0) + needs.worst_output
        ctx.admission = await self.rt.admitter.admit(ctx.principal, plan.worst_case(len(candidates)), worst_tokens)
        ctx.extra_headers.update(ctx.admission.headers)
        ctx.soft_budget_exceeded = ctx.admission.soft_exceeded
        try:
            if view.stream:
                # The relay settles when the stream ends, however it ends.
                return await self._open_stream(ctx, body, needs, candidates)
            return await self._complete(ctx, body, needs, candidates)
        except BaseException:
            self.settle(ctx)
            raise

    def settle(self, ctx: RequestContext) -> None:
        if ctx.admission is not None:
            self.rt.admitter.settle(ctx.admission, ctx.cost, ctx.prompt_tokens + ctx.completion_tokens)

    # ---- attempts -------------------------------------------------------------------------
    async def _attempt(self, ctx: RequestContext, body: dict[str, Any], needs: Needs,
                       candidates: list[Candidate], call: str) -> tuple[Attempt, Any]:
        """Try routes in plan order until one answers (`call` is the adapter's `complete` or
        `stream`); every failure is metered, and a retryable one moves on to the next route."""
        last: UpstreamError | None = None
        deadline = time.monotonic() + self.rt.settings.max_fallback_seconds
        for candidate in candidates:
            attempt = self._begin(ctx, candidate, needs)
            if attempt is None:
                continue
            adapter = self.rt.adapters[candidate.route.front_end]
            try:
                answer = await getattr(adapter, call)(candidate.route, body_for_route(body, candidate))
            except UpstreamError as err:
                attempt.fail(err)
                last = err
                if not self._may_fall_back(err, deadline, candidate):
                    break
                continue
            except asyncio.CancelledError:
                attempt.fail(_cancelled(), client_disconnected=True)
                ctx.client_disconnected = True
                raise
            return attempt, answer
        raise self._exhausted(ctx, last)

    async def _complete(self, ctx: RequestContext, body: dict[str, Any], needs: Needs,
                        candidates: list[Candidate]) -> tuple[bytes, dict[str, str]]:
        attempt, completion = await self._attempt(ctx, body, needs, candidates, "complete")
        attempt.mark_first_token()
        event = attempt.succeed(completion.result)
        self._served(ctx, attempt.candidate, event.prompt_tokens, event.completion_tokens)
        self.settle(ctx)
        out = completion.body
        usage = out.get("usage")
        if isinstance(usage, dict):
            add_cost(usage, event.provider_cost_usd)
        return orjson.dumps(out), self.headers(ctx, cost=event.provider_cost_usd)

    async def _open_stream(self, ctx: RequestContext, body: dict[str, Any], needs: Needs,
                           candidates: list[Candidate]) -> tuple[AsyncIterator[bytes], dict[str, str]]:
        """Routes are tried until one stream has produced its first event; only then do headers
        and bytes go to the client, so every failure before that can still fall back."""
        attempt, upstream = await self._attempt(ctx, body, needs, candidates, "stream")
        self._served(ctx, attempt.candidate, 0, 0)
        return self._relay(ctx, body, attempt, upstream), self.headers(ctx)

    async def _relay(self, ctx: RequestContext, body: dict[str, Any], attempt: Attempt,
                     upstream: Any) -> AsyncIterator[bytes]:
        shaper = ChunkShaper(body)
        finished = False
        error: UpstreamError | None = None
        last_chunk: dict[str, Any] | None = None
        upstream_to_first_token: float | None = None
        ready = getattr(upstream, "buffered", None)
        batch: list[bytes] = []
        try:
            async for chunk in upstream:
                last_chunk = chunk
                shaped = shaper.shape(chunk)
                if shaped is not None:
                    batch.append(encode_chunk(shaped))
                # Events that arrived together leave together: one write, not one per event.
                if not batch or (ready is not None and ready()):
                    continue
                upstream_to_first_token = self._first_token(ctx, attempt, upstream_to_first_token)
                out, batch = b"".join(batch), []
                yield out
            if batch:
                # The last events came in the same read as [DONE] (for a fast upstream, the whole
                # stream): they leave before the request's bookkeeping, which reads the TTFT.
                upstream_to_first_token = self._first_token(ctx, attempt, upstream_to_first_token)
                out, batch = b"".join(batch), []
                yield out
            finished = True
        except UpstreamError as err:
            error = err
        finally:
            # Bookkeeping first and without awaiting: a client that went away cancels this
            # generator through an anyio scope that cancels every later await too.
            if not finished and error is None:
                ctx.client_disconnected = True
            if error is not None or ctx.client_disconnected:
                err = error or _cancelled()
                if err.usage is None:
                    err.usage = upstream.result.usage
                if err.cost_usd is None:
                    err.cost_usd = upstream.result.cost_usd
                err.upstream_request_id = err.upstream_request_id or upstream.result.upstream_request_id
                event = attempt.fail(err, client_disconnected=ctx.client_disconnected)
                ctx.status = 499 if ctx.client_disconnected else err.to_client().status
                ctx.error_code = err.kind.value
            else:
                event = attempt.succeed(upstream.result)
            ctx.prompt_tokens, ctx.completion_tokens = event.prompt_tokens, event.completion_tokens
            self.settle(ctx)
            self.finish(ctx, upstream_to_first_token)
            if ctx.client_disconnected:
                # Stops the upstream call; runs as its own task, outside the cancelled scope.
                _close_later(upstream)
        if batch:
            yield b"".join(batch)
        if error is not None:
            yield error.stream_event(route_name=attempt.route.name)
            yield DONE_EVENT
            return
        fallback_usage = None
        if last_chunk is not None and upstream.result.usage is not None:
            u = upstream.result.usage
            fallback_usage = {
                "id": last_chunk.get("id"), "object": "chat.completion.chunk", "created": last_chunk.get("created"),
                "model": last_chunk.get("model"), "choices": [],
                "usage": {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                          "total_tokens": u.total_tokens},
            }
        final = shaper.final_usage_chunk(event.provider_cost_usd, fallback_usage)
        if final is not None:
            yield encode_chunk(final)
        yield DONE_EVENT

    # ---- shared ---------------------------------------------------------------------------
    @staticmethod
    def _first_token(ctx: RequestContext, attempt: Attempt, upstream_share: float | None) -> float | None:
        """Marks the first bytes sent to the client; returns the upstream's share of that wait."""
        if attempt.first_token_t is not None:
            return upstream_share
        attempt.mark_first_token()
        ctx.ttft = ctx.elapsed()
        # Earlier attempts' time plus this one's wait: the upstream share of the TTFT.
        return ctx.upstream_seconds + (attempt.first_token_t - attempt.t0)

    def _begin(self, ctx: RequestContext, candidate: Candidate, needs: Needs) -> Attempt | None:
        ctx.attempts += 1
        attempt = Attempt(self.rt, ctx, candidate, ctx.attempts, needs.base_prompt_tokens)
        if not attempt.acquire():
            # Filled up between planning and now: not an attempt, just the next route.
            ctx.attempts -= 1
            return None
        if ctx.attempts > 1:
            self.rt.metrics.fallbacks.labels(candidate.route.front_end, "previous_failed").inc()
        return attempt

    def _may_fall_back(self, err: UpstreamError, deadline: float, candidate: Candidate) -> bool:
        if not err.retryable:
            return False
        if time.monotonic() >= deadline:
            return False
        return True

    def _served(self, ctx: RequestContext, candidate: Candidate, prompt: int, completion: int) -> None:
        ctx.served_model = candidate.route.model
        ctx.route = candidate.route.name
        ctx.front_end = candidate.route.front_end
        ctx.prompt_tokens, ctx.completion_tokens = prompt, completion

    def _exhausted(self, ctx: RequestContext, last: UpstreamError | None) -> GatewayError:
        if last is None:
            return GatewayError(503, "Every route for this request is at capacity; retry shortly.",
                                type="server_error", code="no_route_available", headers={"retry-after": "1"})
        err = last.to_client(route_name=None)
        ctx.error_code = last.kind.value
        err.headers = {**ctx.extra_headers, **err.headers}
        return err

    def headers(self, ctx: RequestContext, cost: Decimal | None = None) -> dict[str, str]:
        headers = {
            "x-switchyard-model": ctx.served_model or "",
            "x-switchyard-route": ctx.route or "",
            "x-switchyard-attempts": str(ctx.attempts),
        }
        if cost is not None:
            headers["x-switchyard-cost-usd"] = format(cost, "f")
        headers.update(ctx.extra_headers)
        return headers

    def rejected(self, request_id: str, err: GatewayError, principal: Any = None) -> None:
        """A request refused before planning (authentication, body, validation): counted and logged."""
        m = self.rt.metrics
        m.requests.labels("none", "none", status_class(err.status), "false").inc()
        m.rejections.labels(err.code or "invalid_request").inc()
        log.info("request_rejected", request_id=request_id, status=err.status, error_code=err.code,
                 param=err.param, tenant_id=str(principal.tenant_id) if principal else None)

    def finish(self, ctx: RequestContext, upstream_to_first_token: float | None = None) -> None:
        """Per-request metrics and the one log line; called once per request.

        For a stream that reached its first token, the overhead is what Switchyard added to the
        time to first token; the rest of a stream is the upstream's pace, not ours."""
        m = self.rt.metrics
        elapsed = ctx.elapsed()
        model, fe, stream = ctx.served_model or "none", ctx.front_end or "none", "true" if ctx.stream else "false"
        m.requests.labels(model, fe, status_class(ctx.status), stream).inc()
        m.request_duration.labels(model, fe, stream).observe(elapsed)
        if ctx.ttft is not None:
            m.ttft.labels(model, fe).observe(ctx.ttft)
        if ctx.ttft is not None and upstream_to_first_token is not None:
            overhead = ctx.ttft - upstream_to_first_token
        else:
            overhead = elapsed - ctx.upstream_seconds
        m.overhead.labels(stream).observe(max(0.0, overhead))
        log.info(
            "request",
            request_id=ctx.request_id,
            tenant_id=str(ctx.principal.tenant_id),
            key_prefix=ctx.principal.key_prefix,
            requested_model=ctx.requested_model,
            served_model=ctx.served_model,
            route=ctx.route,
            attempts=ctx.attempts,
            status=ctx.status,
            error_code=ctx.error_code,
            stream=ctx.stream,
            prompt_tokens=ctx.prompt_tokens,
            completion_tokens=ctx.completion_tokens,
            cost_usd=format(ctx.cost, "f"),
            billed_usd=format(ctx.billed, "f"),
            duration_ms=round(elapsed * 1000, 2),
            ttft_ms=round(ctx.ttft * 1000, 2) if ctx.ttft is not None else None,
            client_disconnected=ctx.client_disconnected,
        )


def _cancelled() -> UpstreamError:
    from service.errors import ErrorKind

    return UpstreamError(ErrorKind.PROTOCOL, "client disconnected")


_closing: set[asyncio.Task] = set()


def _close_later(upstream: Any) -> None:
    task = asyncio.get_running_loop().create_task(_quietly(upstream.aclose()))
    _closing.add(task)  # a reference, so the task is not collected before it runs
    task.add_done_callback(_closing.discard)


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except Exception:  # noqa: BLE001 - closing a broken upstream must not mask the real outcome
        pass
