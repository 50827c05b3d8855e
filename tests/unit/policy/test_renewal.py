"""When to renew: two thirds into the lifetime, earlier by up to a tenth at random, never later."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from mutls.errors import InvalidArgument
from mutls.policy.renewal import renewal_time

START = datetime(2026, 1, 1, tzinfo=UTC)
END = START + timedelta(days=90)


def test_without_jitter_it_is_two_thirds_into_the_lifetime() -> None:
    assert renewal_time(START, END, jitter=0) == START + timedelta(days=60)


def test_jitter_only_moves_it_earlier_and_by_at_most_a_tenth() -> None:
    rng = random.Random(7)
    times = [renewal_time(START, END, rng=rng) for _ in range(500)]
    assert all(START + timedelta(days=54) <= t <= START + timedelta(days=60) for t in times)
    assert len(set(times)) > 400  # a fleet issued together spreads out


@pytest.mark.parametrize(
    ("at", "expected"), [(0.0, START), (1.0, END), (0.5, START + timedelta(days=45))]
)
def test_the_fraction_is_a_setting(at: float, expected: datetime) -> None:
    assert renewal_time(START, END, at=at, jitter=0) == expected


@pytest.mark.parametrize(("at", "jitter"), [(-0.1, 0.1), (1.5, 0.1), (0.5, 1.0), (0.5, -0.2)])
def test_fractions_outside_zero_to_one_are_refused(at: float, jitter: float) -> None:
    with pytest.raises(InvalidArgument):
        renewal_time(START, END, at=at, jitter=jitter)
