"""What the schemathesis run (``test_api_fuzz``) adds to the cases it generates: the hostile classes of issue
14, and valid signatures on the signed webhook routes.

``Hostile`` is a ``map_case`` hook. Of every operation's generated cases it turns a share into one hostile
class each (``_schedule``): the first cases of an operation one class each, then every ``STRIDE``-th,
cycling through the classes the operation can carry. A JSON body takes them all, written as raw
bytes so that no encoder cleans them up (``NaN`` and ``Infinity`` as bare tokens, an integer 5,000 digits
long, arrays 5,000 deep, a body one byte past the cap, a string with a control character); an operation
without one takes a control character in a query parameter (a declared one, else ``x``: the edge reads
every query parameter), and its integer query parameters the numbers. The choice depends only on the order
cases are generated in, which the fixed seed fixes: the same run mutates the same cases.

``hostile_input_is_refused`` is the check those cases must pass, on top of every other: a 4xx in the one
error shape. It stands in for positive_data_acceptance where schemathesis still takes a mutated case for a
valid one (``Hostile.filter_failure``).

``WebhookSigner`` and ``KarrioSecret`` are ``requests`` auth: they run on the prepared request, so the
signature covers exactly the bytes sent, a mutated body's too. ``SignedRoutes`` applies them to every case
whose headers schemathesis generated valid, and to none whose headers it generated invalid (a missing or
malformed ``webhook-id``: re-signing it would turn a case that must be refused into one that must not).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from requests.auth import AuthBase
from schemathesis.core.failures import Failure
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.case import Case

from parts_catalog.sqltypes import utcnow
from services.signing import sign
from services.webhooks.inbound.service import KARRIO_HEADER

CONTROL = "control character"
NON_FINITE = "non-finite number"
HUGE = "huge number"
DEEP = "deep nesting"
OVERSIZED = "oversized body"
CLASSES = (CONTROL, NON_FINITE, HUGE, DEEP, OVERSIZED)

# Deterministic variants of each class, taken in turn.
_CONTROL_TEXT = ("a\x00b", "a\x1bb", "a\x7fb", "a\x85b")
_NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e309")
_HUGE = ("1" + "0" * 5000, "-" + "9" * 20, "9" * 4400)
_DEPTH = 5000
# An operation's first cases each take a class (an operation whose coverage phase is off has five fuzzing
# cases, as many as a JSON body has classes); then one in STRIDE.
STRIDE = 8


def _schedule(index: int, classes: int) -> int | None:
    """Which class (an index into the operation's) the operation's ``index``-th case takes, if any."""
    if index < classes:
        return index
    if index % STRIDE == 0:
        return (index // STRIDE) % classes
    return None


@dataclass(frozen=True)
class Shape:
    """What of an operation's request can carry a hostile value, read from the OpenAPI document."""

    json_property: str | None  # the JSON body's first property ("data" for a free object); None: no JSON body
    queries: tuple[str, ...]
    integer_queries: tuple[str, ...]
    body_cap: int

    @property
    def classes(self) -> tuple[str, ...]:
        if self.json_property is not None:
            return CLASSES
        if self.integer_queries:
            return (CONTROL, NON_FINITE, HUGE)
        return (CONTROL,)


def shapes(openapi: dict[str, Any], *, json_cap: int, webhook_cap: int) -> dict[str, Shape]:
    """Every operation's ``Shape``, by its label (``"POST /orders"``)."""
    found = {}
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            parameters = operation.get("parameters", [])
            content = operation.get("requestBody", {}).get("content", {})
            prop = None
            if "application/json" in content:
                schema = content["application/json"].get("schema", {})
                if "$ref" in schema:
                    schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                prop = min(schema.get("properties", {}) or ["data"])
            found[f"{method.upper()} {path}"] = Shape(
                json_property=prop,
                queries=tuple(p["name"] for p in parameters if p["in"] == "query"),
                integer_queries=tuple(
                    p["name"]
                    for p in parameters
                    if p["in"] == "query" and p.get("schema", {}).get("type") == "integer"
                ),
                body_cap=webhook_cap if path.startswith("/webhooks/") else json_cap,
            )
    return found


@dataclass
class Hostile:
    """The ``map_case`` hook of one run, and what it mutated."""

    shapes: dict[str, Shape]
    # case id -> class, for every case the hook mutated (sent or not: the engine may drop a case).
    mutated: dict[str, str] = field(default_factory=dict)
    _seen: dict[str, int] = field(default_factory=dict)
    _variant: itertools.count[int] = field(default_factory=itertools.count)

    def map_case(self, _: Any, case: Case[Any]) -> Case[Any]:
        label = case.operation.label
        index = self._seen.get(label, 0)
        self._seen[label] = index + 1
        shape = self.shapes[label]
        chosen = _schedule(index, len(shape.classes))
        if chosen is not None:
            kind = shape.classes[chosen]
            _mutate(case, shape, kind, next(self._variant))
            self.mutated[case.id] = EXPECTED_REFUSALS[case.id] = kind
        return case

    def filter_failure(self, _: Any, failure: Failure, case: Case[Any], __: Any) -> bool:
        """positive_data_acceptance cannot judge a mutated case that schemathesis still takes for a valid
        one (a control character in an undeclared query parameter): ``hostile_input_is_refused`` does."""
        return not (case.id in self.mutated and "positive_data_acceptance" in failure.checks)


def _mutate(case: Case[Any], shape: Shape, kind: str, variant: int) -> None:
    if shape.json_property is not None:
        case.body = _hostile_body(case.body, shape.json_property, kind, variant, shape.body_cap)
        case.media_type = "application/json"
        return
    numbers = {NON_FINITE: _NON_FINITE, HUGE: _HUGE}.get(kind)
    if numbers is not None:
        name = shape.integer_queries[variant % len(shape.integer_queries)]
        case.query = {**case.query, name: numbers[variant % len(numbers)]}
        return
    names = shape.queries or ("x",)
    case.query = {**case.query, names[variant % len(names)]: _CONTROL_TEXT[variant % len(_CONTROL_TEXT)]}


def _hostile_body(body: Any, key: str, kind: str, variant: int, cap: int) -> bytes:
    """The generated body (an object: its ``key`` replaced) with one hostile value, as raw bytes."""
    rest = {k: v for k, v in body.items() if k != key} if isinstance(body, dict) else {}
    token = {
        CONTROL: json.dumps(_CONTROL_TEXT[variant % len(_CONTROL_TEXT)]),
        NON_FINITE: _NON_FINITE[variant % len(_NON_FINITE)],
        HUGE: _HUGE[variant % len(_HUGE)],
        DEEP: "[" * _DEPTH + "]" * _DEPTH,
        OVERSIZED: json.dumps("x" * cap),
    }[kind]
    encoded = json.dumps(rest, default=str)
    tail = "}" if encoded == "{}" else ", " + encoded[1:]
    return f"{{{json.dumps(key)}: {token}{tail}".encode()


# case id -> class of every case a ``Hostile`` hook mutated, in any run: the cases held to the stricter answer
# of ``hostile_input_is_refused`` (a check is registered once, for the process).
EXPECTED_REFUSALS: dict[str, str] = {}


@schemathesis.check
def hostile_input_is_refused(ctx: Any, response: schemathesis.Response, case: Case[Any]) -> bool | None:
    """A mutated case is answered with a 4xx in the one error shape ``{"error": {"code", "message",
    "details"}}``."""
    kind = EXPECTED_REFUSALS.get(case.id)
    if kind is None:
        return None
    status = response.status_code
    if not 400 <= status < 500:
        raise AssertionError(f"{kind}: answered {status}, not a 4xx")
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{kind}: the {status} is not JSON") from None
    if not (isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], dict)):
        raise AssertionError(f"{kind}: the {status} is not the error shape: {str(body)[:200]}")
    if set(body["error"]) != {"code", "message", "details"}:
        raise AssertionError(f"{kind}: the {status} is not the error shape: {str(body)[:200]}")
    return True


class WebhookSigner(AuthBase):
    """Standard Webhooks headers over exactly the bytes sent, with a new ``webhook-id`` each time (a replayed
    id is acknowledged as a duplicate without its body being judged again)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.ids = itertools.count(1)
        self.signed = 0

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        # Our transport sends bodies whole (bytes or text), never as a stream or an iterable.
        assert isinstance(body, bytes | str), type(body)
        raw = body.encode() if isinstance(body, str) else body
        request.headers.update(sign([self.secret], f"msg_fuzz_{next(self.ids)}", utcnow(), raw))
        self.signed += 1
        return request


class KarrioSecret(AuthBase):
    """Karrio's scheme: the subscription's secret in ``X-Event-Id``."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.signed = 0

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[KARRIO_HEADER] = self.secret
        self.signed += 1
        return request


@dataclass
class SignedRoutes:
    """An ``AuthProvider``: the partner route's cases get ``partner``, Karrio's ``karrio``, unless the case's
    headers are generated invalid (then they go as generated, and must be refused)."""

    partner: WebhookSigner
    karrio: KarrioSecret

    def get(self, case: Case[Any], _: Any) -> AuthBase | None:
        meta = case.meta
        headers = meta.components.get(ParameterLocation.HEADER) if meta is not None else None
        if headers is not None and not headers.mode.is_positive:
            return None
        return self.karrio if case.operation.path == "/webhooks/karrio" else self.partner

    def set(self, case: Case[Any], data: AuthBase, _: Any) -> None:
        case._auth = data  # as schemathesis's own RequestsAuth provider does

    @property
    def signed(self) -> int:
        return self.partner.signed + self.karrio.signed
