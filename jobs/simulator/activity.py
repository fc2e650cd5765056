"""Daily shop activity: sessions expanded into click-stream events and orders.

Vectorised over all sessions of a day; the only Python loop builds each order's item list.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from jobs.simulator.response import P_QTY_TWO, WEEKDAY_FACTOR, purchase_rate, session_rate
from jobs.simulator.world import Population, padded, product_ids

DAY_MS = 86_400_000
SEARCH_SHARE = 0.35  # sessions that start with a search
ABANDON_SHARE = 0.25  # browse sessions that put an item in the cart and leave


@dataclass
class Sessions:
    """A batch of sessions on one day (purchase sessions carry their basket parameters)."""

    customer: np.ndarray
    purchase: np.ndarray
    items_lambda: np.ndarray
    discount_rate: np.ndarray
    start_second: np.ndarray
    tag: np.ndarray  # campaign assignment the session answers (-1: organic)

    def __len__(self) -> int:
        return len(self.customer)

    @classmethod
    def concat(cls, parts: list[Sessions]) -> Sessions:
        if not parts:
            empty = np.zeros(0)
            ints = empty.astype(np.int64)
            return cls(ints, empty.astype(bool), empty, empty, ints, ints)
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))

    def select(self, mask: np.ndarray) -> Sessions:
        return Sessions(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


@dataclass
class ShelfState:
    """Active products of a day, grouped by category for fast sampling."""

    active_sorted: np.ndarray  # product indices of active products, sorted by category
    cat_start: np.ndarray
    cat_count: np.ndarray
    price: np.ndarray  # current price of every product (by product index)

    @classmethod
    def from_state(cls, state: pd.DataFrame, k: int) -> ShelfState:
        active = state.index[state["is_active"].to_numpy()].to_numpy()
        cats = state["category_idx"].to_numpy()[active]
        order = np.argsort(cats, kind="stable")
        counts = np.bincount(cats, minlength=k)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return cls(active[order], starts, counts, state["price"].to_numpy())


def organic_sessions(pop: Population, weekday: int, eligible: np.ndarray, rng: np.random.Generator) -> Sessions:
    """Browse and purchase sessions of all eligible customers for one day (Poisson processes)."""
    wf = WEEKDAY_FACTOR[weekday]
    n_browse = np.where(eligible, rng.poisson(session_rate(pop) * wf), 0)
    n_buy = np.where(eligible, rng.poisson(purchase_rate(pop) * wf), 0)
    idx = np.arange(pop.n)
    customer = np.concatenate([np.repeat(idx, n_browse), np.repeat(idx, n_buy)])
    purchase = np.concatenate([np.zeros(n_browse.sum(), bool), np.ones(n_buy.sum(), bool)])
    lam = pop.col("basket_lambda")[customer]
    return Sessions(
        customer=customer,
        purchase=purchase,
        items_lambda=np.where(purchase, lam, 0.0),
        discount_rate=np.zeros(len(customer)),
        start_second=rng.integers(0, 86_400 - 3 * 3_600, size=len(customer)),
        tag=np.full(len(customer), -1, dtype=np.int64),
    )


def pick_products(pop: Population, customers: np.ndarray, shelf: ShelfState, rng: np.random.Generator) -> np.ndarray:
    """One product per entry: a category by the customer's affinity, then a uniform active product."""
    k = pop.cum_affinity.shape[1]
    u = rng.random(len(customers))
    cat = np.minimum((u[:, None] > pop.cum_affinity[customers]).sum(axis=1), k - 1)
    pos = shelf.cat_start[cat] + (rng.random(len(customers)) * shelf.cat_count[cat]).astype(np.int64)
    return shelf.active_sorted[pos]


# event type codes, in the order they happen within a session
SEARCH, VIEW, ABANDON_CART, ITEM_VIEW, ITEM_CART, PURCHASE = range(6)
TYPE_NAMES = np.array(["search", "view", "add_to_cart", "view", "add_to_cart", "purchase"])


def expand(
    sessions: Sessions,
    pop: Population,
    shelf: ShelfState,
    day_ms: int,
    rng: np.random.Generator,
    id_tag: str,
    ymd: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn sessions into (events, orders) frames: UTC timestamps in ms, order ids and items.

    Event ids are given by the caller once the day's events from all sources are merged.
    """
    order = np.lexsort((sessions.customer, sessions.start_second))
    sessions = sessions.select(order)
    s_count = len(sessions)
    sidx = np.arange(s_count)
    purchase = sessions.purchase

    has_search = rng.random(s_count) < SEARCH_SHARE
    n_views = np.where(purchase, rng.poisson(1.0, s_count), 1 + rng.poisson(1.8, s_count))
    n_items = np.where(purchase, 1 + rng.poisson(sessions.items_lambda), 0)
    abandons = ~purchase & (rng.random(s_count) < ABANDON_SHARE)

    view_sess = np.repeat(sidx, n_views)
    view_prod = pick_products(pop, sessions.customer[view_sess], shelf, rng)
    last_view = np.cumsum(n_views) - 1
    ab_sess = sidx[abandons]
    ab_prod = view_prod[last_view[abandons]]
    item_sess = np.repeat(sidx, n_items)
    item_prod = pick_products(pop, sessions.customer[item_sess], shelf, rng)
    item_qty = 1 + (rng.random(len(item_sess)) < P_QTY_TWO)

    ev_sess = np.concatenate([sidx[has_search], view_sess, ab_sess, item_sess, item_sess, item_sess])
    ev_type = np.concatenate(
        [
            np.full(has_search.sum(), SEARCH),
            np.full(len(view_sess), VIEW),
            np.full(len(ab_sess), ABANDON_CART),
            np.full(len(item_sess), ITEM_VIEW),
            np.full(len(item_sess), ITEM_CART),
            np.full(len(item_sess), PURCHASE),
        ]
    )
    ev_prod = np.concatenate([np.full(has_search.sum(), -1), view_prod, ab_prod, item_prod, item_prod, item_prod])
    ev_order = np.lexsort((np.arange(len(ev_sess)), ev_type, ev_sess))
    ev_sess, ev_type, ev_prod = ev_sess[ev_order], ev_type[ev_order], ev_prod[ev_order]

    # Timestamps: session start plus cumulative gaps between a session's events.
    gaps = rng.integers(8, 150, size=len(ev_sess)) * 1000 + rng.integers(0, 1000, size=len(ev_sess))
    csum = np.cumsum(gaps)
    first = np.searchsorted(ev_sess, ev_sess)  # index of the session's first event
    offset_ms = csum - csum[first]
    start_ms = sessions.start_second * 1000 + rng.integers(0, 1000, size=s_count)
    ts_ms = day_ms + start_ms[ev_sess] + offset_ms

    session_ids = ids("S", ymd, id_tag, s_count, 6)
    time_order = np.argsort(ts_ms, kind="stable")
    events = pd.DataFrame(
        {
            "customer_id": pop.frame["customer_id"].to_numpy()[sessions.customer[ev_sess[time_order]]],
            "ts_ms": ts_ms[time_order],
            "event_type": TYPE_NAMES[ev_type[time_order]],
            "product_id": np.where(ev_prod[time_order] >= 0, product_ids(np.maximum(ev_prod[time_order], 0)), None),
            "session_id": session_ids[ev_sess[time_order]],
        }
    )

    # Orders: one per purchase session, at the time of its last purchase event.
    buy_sessions = sidx[purchase]
    is_purchase_ev = ev_type == PURCHASE
    last_purchase_ts = np.zeros(s_count, dtype=np.int64)
    np.maximum.at(last_purchase_ts, ev_sess[is_purchase_ev], ts_ms[is_purchase_ev])
    line_price = shelf.price[item_prod]
    line_total = np.round(line_price * item_qty, 2)
    amount = np.round(np.bincount(item_sess, weights=line_total, minlength=s_count), 2)
    discount = np.round(amount * sessions.discount_rate, 2)
    # item arrays are ordered by session, and only purchase sessions have items
    starts = np.concatenate([[0], np.cumsum(n_items[buy_sessions])]).tolist()
    pids = product_ids(item_prod).tolist() if len(item_prod) else []
    qtys, prices = item_qty.tolist(), line_price.tolist()
    items = [
        [{"product_id": pids[j], "qty": qtys[j], "price": prices[j]} for j in range(a, b)]
        for a, b in itertools.pairwise(starts)
    ]
    orders = pd.DataFrame(
        {
            "customer_id": pop.frame["customer_id"].to_numpy()[sessions.customer[buy_sessions]],
            "ts_ms": last_purchase_ts[buy_sessions],
            "amount": amount[buy_sessions],
            "discount": discount[buy_sessions],
            "items": items,
            "_tag": sessions.tag[buy_sessions],
            "_session": buy_sessions,
        }
    )
    orders = orders.sort_values(["ts_ms", "_session"], kind="stable").drop(columns="_session")
    orders.insert(0, "order_id", ids("O", ymd, id_tag, len(orders), 6))
    return events, orders.reset_index(drop=True)


def email_events(
    pop: Population,
    customers: np.ndarray,
    send_ms: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Opens and clicks of a campaign e-mail (no session, no product), after each customer's send time."""
    resp = pop.col("email_responsiveness")[customers]
    opened = rng.random(len(customers)) < resp
    clicked = opened & (rng.random(len(customers)) < 0.35)
    open_ms = send_ms + rng.integers(5 * 60_000, 8 * 3_600_000, size=len(customers))
    click_ms = open_ms + rng.integers(2_000, 600_000, size=len(customers))
    ids = pop.frame["customer_id"].to_numpy()
    return pd.DataFrame(
        {
            "customer_id": np.concatenate([ids[customers[opened]], ids[customers[clicked]]]),
            "ts_ms": np.concatenate([open_ms[opened], click_ms[clicked]]),
            "event_type": ["email_open"] * int(opened.sum()) + ["email_click"] * int(clicked.sum()),
            "product_id": None,
            "session_id": None,
        }
    )


def ids(prefix: str, ymd: str, tag: str, n: int, width: int) -> np.ndarray:
    """Sequential ids: prefix, date, tag and a zero-padded number, e.g. ``E20260901`` ``0000001``."""
    return padded(f"{prefix}{ymd}{tag}", np.arange(1, n + 1), width)
