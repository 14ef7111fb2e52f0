"""The fit gives back a known model: synthetic exports drawn with a fixed seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator.usage import EMPIRICAL_MIN_CALLS, Period, fit_holding, fit_rates, import_usage, scenario_text

from .synthetic import office_week, write_export

TUESDAY_10 = 24 + 10


@pytest.mark.parametrize("offset_min", [0, -300])
def test_the_fitted_week_recovers_the_profile_and_its_busy_hour(tmp_path: Path, offset_min: int) -> None:
    """4 weeks at up to 60 calls/h: the busy hour exactly, every hour's rate within 4 standard
    deviations of a Poisson count over 4 hours (the local clock read from the Start Times)."""
    true = office_week(60.0)
    path = tmp_path / "PSTN.calls.synthetic.csv"
    write_export(path, true, weeks=4, seed=16, offset_min=offset_min)
    model = import_usage([path])
    assert model.period.offset_min == offset_min
    assert model.period.end_ms - model.period.start_ms == 28 * 86_400_000
    (fit,) = model.traffic
    assert fit.rates.busy_hour == TUESDAY_10
    assert np.all(fit.rates.covered == 4.0)
    assert np.all(np.abs(fit.rates.rates - true) <= 4 * np.sqrt(true / 4))
    assert fit.rates.calls_per_hour == pytest.approx(true.mean(), rel=0.03)


def test_the_destination_mix_keeps_the_drawn_shares(tmp_path: Path) -> None:
    path = tmp_path / "PSTN.calls.synthetic.csv"
    write_export(path, office_week(30.0), weeks=2, seed=3)
    (fit,) = import_usage([path]).traffic
    prefixes = dict(fit.destinations)
    assert list(prefixes) == ["1212", "1415", "1312", "1617"]
    shares = np.array(list(prefixes.values())) / fit.calls
    assert np.allclose(shares, [0.4, 0.3, 0.2, 0.1], atol=0.02)


def test_holding_times_quantiles_with_many_calls_lognormal_with_few() -> None:
    rng = np.random.default_rng(5)
    many = np.maximum(np.round(rng.lognormal(np.log(120), 0.8, 5000)), 1).astype(np.int64)
    fit = fit_holding(many)
    assert fit.distribution == "empirical"
    probabilities = [p for p, _ in fit.quantiles]
    assert probabilities[0] == 0.0 and probabilities[-1] == 1.0
    assert all(b > a for a, b in zip(probabilities, probabilities[1:]))
    median = dict(fit.quantiles)[0.5] / 1000
    assert median == pytest.approx(120, rel=0.05)
    few = many[:EMPIRICAL_MIN_CALLS - 1]
    fit = fit_holding(few)
    assert fit.distribution == "lognormal"
    assert fit.median_ms / 1000 == pytest.approx(120, rel=0.15)
    assert fit.sigma == pytest.approx(0.8, rel=0.15)
    assert fit_holding(np.array([90])).distribution == "exponential"
    assert fit_holding(np.array([60] * 500)).distribution != "empirical"  # one length: no quantiles to draw


@pytest.mark.parametrize("sigma", [0.5, 0.9, 1.3])
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("n", [EMPIRICAL_MIN_CALLS, 1_000, 10_000])
def test_empirical_holding_keeps_the_calls_mean(sigma: float, seed: int, n: int) -> None:
    """The piecewise-linear quantiles have about the mean of the calls they were fitted to (a
    long tail's chords overstate it unless the tail's points are dense, _fit.QUANTILES; the
    last segment keeps four calls, room for its end to correct it)."""
    rng = np.random.default_rng(seed)
    calls = np.maximum(np.round(rng.lognormal(np.log(240), sigma, n)), 1).astype(np.int64)
    q = fit_holding(calls).quantiles
    fitted = sum((p1 - p0) * (x0 + x1) / 2 for (p0, x0), (p1, x1) in zip(q, q[1:])) / 1000
    # the 17 points of 0.1.0 were 1.7-3.3 % above from 500 calls on (sigma 0.9-1.3)
    assert fitted == pytest.approx(calls.mean(), rel=0.01 if sigma <= 0.9 else 0.02)


def test_the_fit_report_finds_poisson_traffic_inside_its_band(tmp_path: Path) -> None:
    """Traffic drawn from the very profile falls outside the 90% band in about 10% of the hours,
    and its holding times sit on the fitted CDF; the page and its PNG are written."""
    from simulator.usage import write_fit_report

    path = tmp_path / "PSTN.calls.synthetic.csv"
    write_export(path, office_week(60.0), weeks=4, seed=16)
    page = tmp_path / "fit.html"
    (quality,) = write_fit_report(import_usage([path]), page)
    assert quality.hours == 28 * 24
    assert 0.03 < quality.outside_band < 0.2
    assert quality.ks_distance < 0.02
    assert (tmp_path / "fit" / "domestic.png").read_bytes().startswith(b"\x89PNG")
    assert "seen at most once" not in page.read_text()


def test_the_busiest_hour_named_is_one_the_export_covers(tmp_path: Path) -> None:
    """A one-day export (Wednesday) fills the other days' hours with its own: Monday 10:00 ties
    with Wednesday 10:00 and comes first, but only Wednesday's was observed."""
    wednesday = 1_762_300_800_000  # 2025-11-05T00:00Z, a Wednesday
    starts = np.array([wednesday + 10 * 3_600_000 + i * 60_000 for i in range(5)] + [wednesday + 15 * 3_600_000])
    fit = fit_rates(starts, Period(wednesday, wednesday + 86_400_000, 0, "parameters.json", "test"))
    assert fit.rates[10] == fit.rates[2 * 24 + 10] == 5.0  # Monday 10:00 filled in from Wednesday
    assert fit.busy_hour == 2 * 24 + 10
    path = tmp_path / "PSTN.calls.x.csv"
    from simulator.usage import EXPORT_HEADER

    path.write_bytes(EXPORT_HEADER + "".join(
        f"u{i},c,,US,o,alice@contoso.com,,,user_out,Subscriber,Domestic,United States,+12125550100,"
        f"2025-11-05T{hour}:{i:02d}:00Z,,60,0.00,0.00,USD,MCOPSTN1\r\n"
        for i, hour in enumerate(["10"] * 5 + ["15"])).encode())
    assert "busiest hour Wednesday 10:00 (5.0/h)" in scenario_text(import_usage([path]))
