"""What a plan is made of: the candidate routes with their costs, the routes left out and why.

Ranking reads floats (it only orders routes); every figure reported or reserved is an exact Decimal,
computed on first use. The planner (service.routing.planner) builds these; the gateway tries,
reserves against and reports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeAlias

from service.catalog.model import Model, Pricing, Route

# (context uncertain, client's front-end order, client's model order, held back, then by `sort`):
# ints, bools and floats, compared element by element.
RankKey: TypeAlias = tuple[float, ...]


class Candidate:
    """A route that can serve the request. Ranking reads `expected_f`, a float; the exact Decimal
    costs (`low`, `expected`, `high`) are computed on first use, since only the routes actually
    tried, reserved against or shown in a quote ever need them."""

    __slots__ = (
        "_bound",
        "_exact",
        "_pricing",
        "_prompt_bound",
        "_prompt_high",
        "context_uncertain",
        "cost_basis",
        "expected_f",
        "expected_output",
        "held_back",
        "model",
        "prompt_tokens",
        "quote",
        "rank_key",
        "route",
        "worst_output",
    )

    def __init__(self, route: Route, model: Model, prompt_tokens: int, expected_output: int, cost_basis: str,
                 expected_f: float, *, pricing: Pricing | None = None, prompt_high: int = 0, worst_out: int = 0,
                 prompt_bound: int = 0, exact: tuple[Decimal, Decimal, Decimal] | None = None,
                 quote: Decimal | None = None) -> None:
        self.route = route
        self.model = model
        self.prompt_tokens = prompt_tokens  # the cost estimate's prompt tokens (calibrated)
        self.expected_output = expected_output
        self.cost_basis = cost_basis  # per_token | flat | quoted | estimated_quote
        self.expected_f = expected_f
        self.rank_key: RankKey = ()
        # The output bound the gateway sends upstream when the client set none: what `high` and
        # `bound` assume, so that nothing can generate past them.
        self.worst_output = worst_out
        self.quote = quote  # Orthogonal's dry-run price for this call, when one was asked
        # The prompt may or may not fit the model's context: only the upstream's count can tell,
        # so the route comes after every route that surely fits.
        self.context_uncertain = False
        # A flat-fee route whose expected saving is below the pool's threshold: kept as a
        # fallback, ranked after the request's other routes.
        self.held_back = False
        self._pricing = pricing
        self._prompt_high = prompt_high
        self._prompt_bound = max(prompt_bound, prompt_high)
        self._exact = exact
        self._bound: Decimal | None = None

    def _token_cost(self, prompt: int, completion: int) -> Decimal:
        # A candidate built without exact costs is priced per token (its route's prices or a quoted
        # route's per-token estimate), and the catalog refuses per-token pricing missing a price.
        cost = self._pricing.token_cost(prompt, completion) if self._pricing is not None else None
        if cost is None:
            raise ValueError(f"route {self.route.name} has neither exact costs nor token prices")
        return cost

    def _costs(self) -> tuple[Decimal, Decimal, Decimal]:
        if self._exact is None:
            self._exact = (
                self._token_cost(self.prompt_tokens, 1),
                self._token_cost(self.prompt_tokens, self.expected_output),
                self._token_cost(self._prompt_high, self.worst_output),
            )
        return self._exact

    @property
    def low(self) -> Decimal:
        return self._costs()[0]

    @property
    def expected(self) -> Decimal:
        return self._costs()[1]

    @property
    def high(self) -> Decimal:
        return self._costs()[2]

    @property
    def bound(self) -> Decimal:
        """The most this call can cost the operator, for hard budgets: the prompt at one token
        per byte of what is sent (no tokenizer yields a token shorter than a byte), the output at
        the bound sent upstream; a quoted route at twice its quote or token estimate, since its
        price is the marketplace's to set (a charge above it is counted and reported as a shortfall)."""
        if self._bound is None:
            if self.cost_basis == "flat":
                self._bound = self.high
            elif self.cost_basis in ("quoted", "estimated_quote"):
                by_tokens = self._pricing.token_cost(self._prompt_bound, self.worst_output) if self._pricing else None
                self._bound = 2 * max(self.high, by_tokens or Decimal(0))
            else:
                self._bound = self._token_cost(self._prompt_bound, self.worst_output)
        return self._bound

    def high_f(self) -> float:
        if self._exact is not None:
            return float(self._exact[2])
        if self._pricing is None:
            raise ValueError(f"route {self.route.name} has neither exact costs nor token prices")
        return float_cost(self._pricing, self._prompt_high, self.worst_output)

    def as_json(self, billed: Callable[[Decimal], Decimal] = lambda amount: amount) -> dict[str, Any]:
        """`billed` turns a provider cost into what the caller would be billed for it."""
        return {
            "route": self.route.name,
            "model": self.route.model,
            "front_end": self.route.front_end,
            "cost_usd": {"low": str(billed(self.low)), "expected": str(billed(self.expected)),
                         "high": str(billed(self.high)), "reserved": str(billed(self.bound))},
            "cost_basis": self.cost_basis,
            "estimated_prompt_tokens": self.prompt_tokens,
            "expected_output_tokens": self.expected_output,
        }


def float_cost(p: Pricing, prompt: int, completion: int) -> float:
    """The same arithmetic as Pricing.token_cost in floats, for ranking only."""
    per_in, per_out, fee = p.float_terms
    return prompt * per_in + completion * per_out + fee


@dataclass(slots=True)
class Exclusion:
    route: str
    reason: str
    code: str
    # For context_length_exceeded: the fewest prompt tokens the request may count, and the output asked for.
    prompt_tokens: int | None = None
    output_tokens: int | None = None

    def as_json(self) -> dict[str, str]:
        return {"route": self.route, "reason": self.reason, "code": self.code}


@dataclass(slots=True)
class Plan:
    requested_model: str
    candidates: list[Candidate] = field(default_factory=list)
    excluded: list[Exclusion] = field(default_factory=list)

    def worst_case(self, attempts: int) -> Decimal:
        """What the first `attempts` routes could cost together at most: every attempt can be
        charged (a marketplace may bill a failed call, a cut stream bills its tokens)."""
        return sum((c.bound for c in self.candidates[:attempts]), Decimal(0))

    def as_json(self, billed: Callable[[Decimal], Decimal] = lambda amount: amount) -> dict[str, Any]:
        return {
            "model": self.requested_model,
            "routes": [c.as_json(billed) for c in self.candidates],
            "excluded": [e.as_json() for e in self.excluded],
        }
