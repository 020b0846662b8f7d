"""Prometheus metrics, one registry per app (so tests can build many apps side by side).

Labels are bounded: versions, configured profile names (anything else is ``other``), problem
slugs, route templates. No caller id, file name, token or key ever becomes a label.
"""

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._latency: dict[tuple[str, str, int], Any] = {}
        self._issued: dict[tuple[str, str, str], Any] = {}
        self.issued = Counter(
            "upload_auth_credentials_issued",
            "Credentials issued",
            ["version", "profile", "method"],
            registry=self.registry,
        )
        self.refused = Counter(
            "upload_auth_credentials_refused",
            "Credential requests refused",
            ["version", "profile", "reason"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "upload_auth_rate_limited",
            "Requests refused by a rate limit or quota",
            ["version", "limit"],
            registry=self.registry,
        )
        self.rate_limit_fallbacks = Counter(
            "upload_auth_rate_limit_fallbacks",
            "Rate-limit checks done in process memory because Redis did not answer",
            registry=self.registry,
        )
        self.jwks_fetches = Counter(
            "upload_auth_jwks_fetches",
            "JWKS fetches from the identity provider",
            ["outcome"],
            registry=self.registry,
        )
        self.idp_refusals = Counter(
            "upload_auth_idp_refusals",
            "Identity-provider tokens refused, by the check that failed",
            ["reason"],
            registry=self.registry,
        )
        self.forward_auth = Counter(
            "upload_auth_forward_auth",
            "Forward-auth session checks",
            ["outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "upload_auth_request_duration_seconds",
            "Request latency",
            ["route", "method", "status"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._latency.get(key)
        if child is None:  # labels() costs more than observe(): one lookup per combination
            child = self._latency[key] = self.latency.labels(route, method, str(status))
        child.observe(seconds)

    def issued_counter(self, version: str, profile: str, method: str) -> Any:
        key = (version, profile, method)
        child = self._issued.get(key)
        if child is None:
            child = self._issued[key] = self.issued.labels(version, profile, method)
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)
