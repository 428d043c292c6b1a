"""The simulated population: who the customers are, and the latent traits that drive them.

Everything a customer does in the simulator follows from the traits drawn here. The traits are
hidden from the product; only their consequences (events) are written to history, so a learner
has to find them from behaviour, e.g. the channel affinity from open rates, the peak hour from
when the customer is active, the responsiveness from who reacts to contacts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from decisioning.channels import CONSENT_CHANNELS, CONTACT_CHANNELS, Channel
from experiments.simulator.clock import DAY
from experiments.simulator.objectives import CATEGORIES

N_CONTACT = len(CONTACT_CHANNELS)  # email, sms, push, whatsapp, paid_social
N_CONSENT = len(CONSENT_CHANNELS)  # the owned channels, in the same order
PAID = N_CONTACT - 1


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class WorldConfig:
    """Parameters of the default world; rates are per day, channel tuples follow CONTACT_CHANNELS.

    The defaults are calibrated so that doing nothing is the best action at roughly nine decision
    moments in ten, and a contact pays off for a minority (the persuadable customers).
    """

    timezones: tuple[str, ...] = (
        "Europe/Paris", "Europe/London", "America/New_York", "America/Los_Angeles", "Asia/Tokyo",
    )  # fmt: skip
    countries: tuple[str, ...] = ("FR", "GB", "US", "US", "JP")
    timezone_shares: tuple[float, ...] = (0.25, 0.20, 0.25, 0.15, 0.15)
    segments: tuple[str, ...] = ("young_tech", "family", "senior", "professional")
    segment_shares: tuple[float, ...] = (0.28, 0.30, 0.17, 0.25)
    #: logit of channel affinity per segment (email, sms, push, whatsapp, paid_social)
    segment_affinity: tuple[tuple[float, ...], ...] = (
        (-1.0, -1.2, 0.9, 0.7, -2.0),
        (0.2, -0.3, 0.3, 0.4, -2.0),
        (0.9, 0.5, -1.3, -0.9, -2.4),
        (0.5, -0.6, 0.0, -0.2, -2.2),
    )
    affinity_noise_sd: float = 1.2
    segment_peak_hour: tuple[float, ...] = (21.0, 20.0, 10.0, 12.5)
    peak_hour_sd: float = 3.0
    segment_weekend_log: tuple[float, ...] = (0.3, 0.4, -0.1, -0.3)
    weekend_log_sd: float = 0.5
    premium_plan_share: float = 0.30
    consent_rates: tuple[float, ...] = (0.90, 0.50, 0.60, 0.35)  # email, sms, push, whatsapp
    history_days: float = 730.0
    new_customer_share: float = 0.15
    new_customer_days: float = 90.0
    ignorer_share: float = 0.10
    #: share of sessions in the app for customers without push consent, and for those with it
    #: at push affinity 0 and 1: how much a customer uses the app reveals how they take to push
    app_share_no_push: float = 0.2
    app_share_push: tuple[float, float] = (0.3, 0.95)
    activity_rate: float = 0.45
    activity_sd: float = 0.5
    anonymous_share: float = 0.04
    #: daily purchase rate per category for a basic-plan customer
    purchase_rates: tuple[float, ...] = (0.05, 0.004, 0.015)
    premium_plan_premium_multiplier: float = 3.0
    #: median and log-sd of purchase values per category
    purchase_values: tuple[tuple[float, float], ...] = ((25.0, 0.4), (90.0, 0.3), (18.0, 0.5))
    persuadable_share: float = 0.10
    #: logit slope of being persuadable on the (standardised) activity level: engaged customers
    #: are more often persuadable, which is how a learner can tell them apart
    persuadable_activity_link: float = 2.0
    persuadable_median: float = 0.15
    persuadable_sd: float = 0.7
    #: correlation of a persuadable customer's (log) responsiveness with the activity level
    responsiveness_activity_corr: float = 0.6
    unpersuadable_median: float = 0.0001
    unpersuadable_sd: float = 0.8
    responsiveness_cap: float = 0.5
    #: a message on a channel the customer has no affinity for still converts this share as
    #: often as on one at affinity 1 (opens, by contrast, follow the affinity fully)
    uplift_affinity_floor: float = 0.3
    #: a retention message saves this many times more often than a promotion converts
    retention_multiplier: float = 4.0
    ticket_rate: float = 0.004
    ticket_mean_days: float = 2.5
    churn_rate: float = 0.0015
    churn_sd: float = 0.8
    new_customer_churn_multiplier: float = 3.0
    ticket_churn_multiplier: float = 4.0
    premium_plan_churn_multiplier: float = 0.6
    fatigue_half_life_days: float = 4.0
    #: pressure at which response falls by a factor e
    response_pressure_scale: float = 2.0
    #: pressure at which unsubscribe and complaint risks have doubled
    harm_pressure_scale: float = 1.5
    hour_response_sd: float = 2.5
    hour_response_floor: float = 0.15
    open_base: tuple[float, ...] = (0.70, 0.80, 0.50, 0.85, 0.06)
    click_base: tuple[float, ...] = (0.12, 0.08, 0.10, 0.14, 0.20)
    unsubscribe_base: tuple[float, ...] = (0.004, 0.008, 0.006, 0.008, 0.0)
    complaint_base: tuple[float, ...] = (0.0004, 0.0010, 0.0003, 0.0010, 0.0002)
    ticket_complaint_multiplier: float = 25.0
    conversion_delay_days: float = 1.0
    recent_purchase_days: float = 7.0
    decision_rate: float = 0.3
    daytime_hours: tuple[float, float] = (8.0, 21.0)

    @property
    def fatigue_tau(self) -> float:
        """Decay time constant of the latent pressure, in seconds."""
        return self.fatigue_half_life_days * DAY / np.log(2.0)


@dataclass(frozen=True)
class Population:
    """Observable attributes and latent traits of every customer, as arrays over customers.

    ``affinity`` is (n, 5) over CONTACT_CHANNELS; ``consent`` is (n, 4) over CONSENT_CHANNELS
    as given at sign-up; ``purchase_rate`` is (n, 3) over CATEGORIES; ``weekday_weight`` is
    (n, 7), Monday first, with mean 1 over the week.
    """

    customer_ids: np.ndarray
    signup: np.ndarray
    tz: np.ndarray
    segment: np.ndarray
    premium_plan: np.ndarray
    consent: np.ndarray
    affinity: np.ndarray
    peak_hour: np.ndarray
    weekday_weight: np.ndarray
    activity_rate: np.ndarray
    app_share: np.ndarray
    purchase_rate: np.ndarray
    responsiveness: np.ndarray
    persuadable: np.ndarray
    ignorer: np.ndarray
    ticket_rate: np.ndarray
    churn_rate: np.ndarray

    @property
    def size(self) -> int:
        return len(self.customer_ids)


def customer_ids(n: int) -> np.ndarray:
    """Ids ``c000000`` ... for ``n`` customers (at least six digits)."""
    width = max(6, len(str(max(n - 1, 0))))
    return np.strings.add("c", np.strings.zfill(np.arange(n).astype(str), width)).astype(object)


def draw_population(
    world: WorldConfig, n: int, start: float, rng: np.random.Generator
) -> Population:
    """Draw ``n`` customers who signed up before epoch time ``start``."""
    seg = rng.choice(len(world.segments), size=n, p=_shares(world.segment_shares)).astype(np.int8)
    tz = rng.choice(len(world.timezones), size=n, p=_shares(world.timezone_shares)).astype(np.int8)
    new = rng.random(n) < world.new_customer_share
    age_days = np.where(
        new,
        rng.uniform(0.5, world.new_customer_days, n),
        rng.uniform(world.new_customer_days, world.history_days, n),
    )
    signup = start - age_days * DAY
    premium_plan = rng.random(n) < world.premium_plan_share
    consent = rng.random((n, N_CONSENT)) < np.asarray(world.consent_rates)

    # Individual noise is large on purpose: many customers contradict their segment's stereotype.
    logits = np.asarray(world.segment_affinity)[seg] + rng.normal(
        0.0, world.affinity_noise_sd, (n, N_CONTACT)
    )
    ignorer = rng.random(n) < world.ignorer_share
    logits[ignorer, :N_CONSENT] -= 4.0
    logits[ignorer, PAID] = rng.normal(2.5, 0.5, int(ignorer.sum()))
    affinity = _sigmoid(logits)

    peak = np.asarray(world.segment_peak_hour)[seg] + rng.normal(0.0, world.peak_hour_sd, n)
    peak = np.clip(peak, 7.0, 23.0)
    weekend = np.exp(
        np.asarray(world.segment_weekend_log)[seg] + rng.normal(0.0, world.weekend_log_sd, n)
    )
    weights = np.ones((n, 7))
    weights[:, 5:] = weekend[:, None]
    weights /= weights.mean(axis=1, keepdims=True)

    z_activity = rng.normal(size=n)
    sd = world.activity_sd
    activity = world.activity_rate * np.exp(sd * z_activity - sd * sd / 2)
    lo, hi = world.app_share_push
    push = CONTACT_CHANNELS.index(Channel.PUSH)
    app_share = np.where(
        consent[:, push], lo + (hi - lo) * affinity[:, push], world.app_share_no_push
    )

    rates = np.asarray(world.purchase_rates)[None, :] * np.exp(rng.normal(0.0, 0.5, (n, 3)))
    premium = CATEGORIES.index("premium")
    rates[:, premium] *= np.where(premium_plan, world.premium_plan_premium_multiplier, 1.0)
    rates *= np.exp(0.3 * z_activity)[:, None]

    # Engaged customers are more often persuadable: a signal a learner can pick up.
    base = _logit_intercept(world.persuadable_share, world.persuadable_activity_link)
    persuadable = rng.random(n) < _sigmoid(base + world.persuadable_activity_link * z_activity)
    # ... and, among the persuadable, the more engaged respond more strongly.
    rho = world.responsiveness_activity_corr
    z_response = rho * z_activity + np.sqrt(1.0 - rho * rho) * rng.normal(size=n)
    responsiveness = np.where(
        persuadable,
        world.persuadable_median * np.exp(world.persuadable_sd * z_response),
        world.unpersuadable_median * np.exp(rng.normal(0.0, world.unpersuadable_sd, n)),
    )
    responsiveness = np.minimum(responsiveness, world.responsiveness_cap)

    ticket_rate = world.ticket_rate * np.exp(rng.normal(0.0, 0.5, n))
    # Quiet customers churn more: the hazard is tied to (low) activity.
    z_churn = -0.5 * z_activity + np.sqrt(0.75) * rng.normal(size=n)
    churn = world.churn_rate * np.exp(world.churn_sd * z_churn - world.churn_sd**2 / 2)
    churn *= np.where(premium_plan, world.premium_plan_churn_multiplier, 1.0)

    return Population(
        customer_ids=customer_ids(n),
        signup=signup,
        tz=tz,
        segment=seg,
        premium_plan=premium_plan,
        consent=consent,
        affinity=affinity,
        peak_hour=peak,
        weekday_weight=weights,
        activity_rate=activity,
        app_share=app_share,
        purchase_rate=rates,
        responsiveness=responsiveness,
        persuadable=persuadable,
        ignorer=ignorer,
        ticket_rate=ticket_rate,
        churn_rate=churn,
    )


def _logit_intercept(share: float, slope: float) -> float:
    """The intercept b with E[sigmoid(b + slope * Z)] = share for a standard normal Z.

    So the persuadable share stays what the config says however strongly it follows activity.
    """
    z, w = np.polynomial.hermite_e.hermegauss(64)
    w = w / w.sum()
    b = float(np.log(share / (1.0 - share)))
    for _ in range(50):  # Newton steps on a smooth, increasing function of b
        p = _sigmoid(b + slope * z)
        gap = float(w @ p) - share
        if abs(gap) < 1e-12:
            break
        b -= gap / float(w @ (p * (1.0 - p)))
    return b


def _shares(values: tuple[float, ...]) -> np.ndarray:
    p = np.asarray(values, dtype=float)
    return p / p.sum()
