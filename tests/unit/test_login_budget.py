"""The failed-login budget of the embedded server: 5 at once, then one a minute, per client."""

from __future__ import annotations

from klash_sync.embedded.logins import BURST, REFILL, Failures, client_key


class Now:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_five_failures_then_one_a_minute():
    now = Now()
    failures = Failures(now)
    for n in range(BURST):
        assert failures.wait("a") == 0, n
        failures.failed("a")
    assert failures.wait("a") == REFILL  # answered 429 with Retry-After: 60
    assert failures.wait("b") == 0  # another client is not affected
    now.t += REFILL / 2
    assert failures.wait("a") == REFILL / 2
    now.t += REFILL / 2
    assert failures.wait("a") == 0  # one more try after a minute ...
    failures.failed("a")
    assert failures.wait("a") == REFILL  # ... and only one
    now.t += BURST * REFILL
    assert failures.wait("a") == 0


def test_the_counters_take_bounded_memory():
    failures = Failures(Now(), max_clients=100)
    for n in range(1000):
        failures.failed(f"client-{n}")
    assert len(failures) == 100


def test_clients_are_counted_by_address_and_ipv6_by_64():
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("not an address") == "not an address"
