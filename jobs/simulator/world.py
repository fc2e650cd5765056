"""The simulated shop's population: customers with latent traits, and a product catalogue.

Latent traits drive everything the simulator generates and are written only to the truth
folder, never to the landing zone. Observable attributes (region, channel, age, ...) are
correlated with the latents, so a model can learn the heterogeneous effects from data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from jobs.simulator.config import CATEGORIES, CHANNELS, GENDERS, REGIONS, SimConfig
from jobs.simulator.rng import rng_for

FIRST_NAMES = np.array(
    ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Klara",
     "Leon", "Mia", "Noah", "Olivia", "Paul", "Rosa", "Samuel", "Tara", "Umar", "Vera", "Wim",
     "Xenia", "Yusuf", "Zoe"]
)  # fmt: skip
LAST_NAMES = np.array(
    ["Adler", "Berg", "Costa", "Dietz", "Engel", "Fischer", "Graf", "Hahn", "Ivanova", "Jung",
     "Keller", "Lang", "Meyer", "Novak", "Ortiz", "Peters", "Quinn", "Richter", "Schulz", "Tan",
     "Ueda", "Vogel", "Weber", "Young", "Zimmer"]
)  # fmt: skip
#: mean list price per category (the catalogue draws prices around it)
CATEGORY_PRICE = np.array([45.0, 28.0, 18.0, 180.0, 35.0, 60.0, 55.0, 30.0])


@dataclass
class Population:
    """Customers as column arrays (index = customer number), latents included."""

    frame: pd.DataFrame
    affinity: np.ndarray  # (n, K) category affinities, rows sum to 1
    cum_affinity: np.ndarray  # row-wise cumulative sums, for sampling categories

    @property
    def n(self) -> int:
        return len(self.frame)

    def col(self, name: str) -> np.ndarray:
        return self.frame[name].to_numpy()


def padded(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """``prefix`` + zero-padded numbers, e.g. ``C0000042`` (an empty input gives an empty array)."""
    if len(numbers) == 0:
        return np.zeros(0, dtype=f"<U{len(prefix) + width}")
    return np.char.add(prefix, np.char.zfill(np.asarray(numbers).astype(str), width))


def customer_ids(index: np.ndarray) -> np.ndarray:
    return padded("C", index + 1, 7)


def product_ids(index: np.ndarray) -> np.ndarray:
    return padded("P", index + 1, 5)


def make_population(cfg: SimConfig) -> Population:
    """Draw every customer's latents and observable attributes (deterministic in ``cfg.seed``)."""
    rng = rng_for(cfg.seed, "customers")
    n = cfg.customers
    k = len(CATEGORIES)
    idx = np.arange(n)

    channel = rng.choice(len(CHANNELS), size=n, p=[0.5, 0.35, 0.15])
    region = rng.choice(len(REGIONS), size=n, p=[0.22, 0.2, 0.18, 0.2, 0.2])
    birth_year = np.clip(np.round(rng.normal(1984, 13, size=n)), 1935, 2008).astype(int)
    # the injected shift draws from its own stream: without it, the population is unchanged
    wave = np.zeros(n, bool)
    if cfg.shift_share > 0:
        srng = rng_for(cfg.seed, "population-shift")
        wave[srng.choice(n, size=round(cfg.shift_share * n), replace=False)] = True
        channel[wave] = CHANNELS.index("marketplace")
        birth_year[wave] = np.clip(np.round(srng.normal(2001, 4, size=int(wave.sum()))), 1990, 2008).astype(int)
        wave_signup = srng.integers(cfg.shift_day, cfg.days, size=n)
    age_norm = (2026 - birth_year - 18) / 60.0  # 0 (young) .. ~1 (old)

    # Latent traits. Younger and marketplace customers are more price sensitive; app users
    # are more engaged; dormancy (lapse) is bimodal: most customers active, some lapsing.
    price_sensitivity = rng.beta(2.0, 2.0, size=n)
    price_sensitivity = np.clip(price_sensitivity + 0.15 * (channel == 2) - 0.2 * (age_norm - 0.4), 0, 1)
    engagement = rng.lognormal(-0.18, 0.6, size=n) * np.where(channel == 1, 1.4, 1.0)
    dormant = rng.random(n) < 0.3
    dormancy = np.where(dormant, rng.beta(5, 2, size=n), rng.beta(1, 8, size=n))
    email_responsiveness = np.clip(rng.beta(2, 5, size=n) + 0.1 * (age_norm > 0.5), 0, 1)
    basket_lambda = 0.2 + rng.gamma(1.5, 0.4, size=n)
    affinity = rng.dirichlet(np.full(k, 0.35), size=n)
    affinity = np.clip(affinity, 1e-4, None)
    affinity /= affinity.sum(axis=1, keepdims=True)

    # Signups: most customers before the simulated period, some during it.
    is_new = rng.random(n) < cfg.new_customer_share
    days_before = rng.integers(1, 3 * 365, size=n)
    signup_offset = np.where(is_new, rng.integers(0, cfg.days, size=n), -days_before)
    if wave.any():
        signup_offset = np.where(wave, wave_signup, signup_offset)
    start = np.datetime64(cfg.start, "D")
    signup_date = start + signup_offset.astype("timedelta64[D]")

    gender = rng.choice(len(GENDERS), size=n, p=[0.49, 0.48, 0.03])
    first = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), size=n)]
    last = LAST_NAMES[rng.integers(0, len(LAST_NAMES), size=n)]
    has_email = rng.random(n) < 0.93
    ids = customer_ids(idx)
    email = np.where(
        has_email, np.char.add(np.char.add(np.char.lower(first), "."), np.char.add(ids, "@example.com")), ""
    )
    phone = np.char.add("+49 151 ", np.char.zfill(rng.integers(0, 10**7, size=n).astype(str), 7))

    frame = pd.DataFrame(
        {
            "customer_id": ids,
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": phone,
            "signup_date": signup_date,
            "signup_day": signup_offset,
            "region": np.array(REGIONS)[region],
            "channel": np.array(CHANNELS)[channel],
            "birth_year": birth_year,
            "gender": np.array(GENDERS)[gender],
            "has_email": has_email,
            "price_sensitivity": price_sensitivity,
            "engagement": engagement,
            "dormancy": dormancy,
            "email_responsiveness": email_responsiveness,
            "basket_lambda": basket_lambda,
        }
    )
    for j, cat in enumerate(CATEGORIES):
        frame[f"affinity_{cat}"] = affinity[:, j]
    return Population(frame=frame, affinity=affinity, cum_affinity=np.cumsum(affinity, axis=1))


@dataclass
class Catalogue:
    """Products with their price and availability over the simulated days."""

    frame: pd.DataFrame  # one row per product: initial state and latent popularity
    changes: pd.DataFrame  # one row per change: day, product index, new price, active flag

    def state_on(self, day: int) -> pd.DataFrame:
        """Price and availability of every product on a day (changes apply from their day on)."""
        state = self.frame[["product_id", "category_idx", "price", "is_active"]].copy()
        applied = self.changes[self.changes["day"] <= day]
        if len(applied):
            last = applied.groupby("product", sort=True).tail(1)
            state.loc[last["product"].to_numpy(), "price"] = last["price"].to_numpy()
            state.loc[last["product"].to_numpy(), "is_active"] = last["is_active"].to_numpy()
        return state


def make_catalogue(cfg: SimConfig) -> Catalogue:
    rng = rng_for(cfg.seed, "products")
    m = cfg.products
    k = len(CATEGORIES)
    # Every category gets at least two products; the rest follow category popularity.
    category = np.concatenate([np.repeat(np.arange(k), 2), rng.choice(k, size=m - 2 * k, p=np.full(k, 1 / k))])
    category = np.sort(category)
    price = np.round(CATEGORY_PRICE[category] * rng.lognormal(-0.08, 0.4, size=m), 2)
    margin = np.round(rng.uniform(0.15, 0.55, size=m), 3)
    frame = pd.DataFrame(
        {
            "product_id": product_ids(np.arange(m)),
            "name": [f"{CATEGORIES[c].title()} item {i + 1}" for i, c in enumerate(category)],
            "category_idx": category,
            "category": np.array(CATEGORIES)[category],
            "price": price,
            "margin_rate": margin,
            "is_active": True,
        }
    )
    # Price changes and discontinuations during the simulated period (never below 2 per category).
    n_changes = round(cfg.product_change_share * m)
    rows = []
    active_per_cat = np.bincount(category, minlength=k)
    for p in rng.choice(m, size=min(n_changes, m), replace=False):
        day = int(rng.integers(1, max(cfg.days, 2)))
        if rng.random() < 0.25 and active_per_cat[category[p]] > 2:
            active_per_cat[category[p]] -= 1
            rows.append((day, int(p), float(price[p]), False))
        else:
            rows.append((day, int(p), float(np.round(price[p] * rng.uniform(0.8, 1.15), 2)), True))
    changes = pd.DataFrame(rows, columns=["day", "product", "price", "is_active"])
    changes = changes.sort_values(["day", "product"], kind="stable").reset_index(drop=True)
    return Catalogue(frame=frame, changes=changes)


def category_mean_price(state: pd.DataFrame, k: int = len(CATEGORIES)) -> np.ndarray:
    """Mean price of the active products of each category (what a uniform pick costs on average)."""
    active = state[state["is_active"]]
    sums = np.bincount(active["category_idx"], weights=active["price"], minlength=k)
    counts = np.bincount(active["category_idx"], minlength=k)
    return sums / np.maximum(counts, 1)


def date_of(cfg: SimConfig, day: int) -> str:
    return (cfg.start + timedelta(days=day)).isoformat()
