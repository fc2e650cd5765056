"""Pull JSON pages from the shop's REST API into the landing zone, resumably.

The API answers ``GET {base_url}{endpoint}?ds=YYYY-MM-DD&limit=N[&cursor=C]`` with
``{"data": [{...}, ...], "next_cursor": "..." | null}``. Every page lands atomically as JSON lines
in ``<landing>/<table>/ds=<ds>/http-page-00001.jsonl`` (``00002``, ...), and a checkpoint
``_http_state.json`` next to the pages records the cursor of the next page. A rerun resumes from
the checkpoint, so no page is fetched or written twice; a complete pull is not repeated unless
``restart=True``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import requests
from pydantic import SecretStr

from jobs.settings import Settings, mask_url
from jobs.simulator.files import write_atomic

log = logging.getLogger(__name__)

STATE_FILE = "_http_state.json"
PAGE_PREFIX = "http-page-"
PAGE_GLOBS = (f"{PAGE_PREFIX}*.jsonl", f".{PAGE_PREFIX}*.tmp", f".{STATE_FILE}.*.tmp")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_PAGE = re.compile(rf"^{PAGE_PREFIX}(\d+)\.jsonl$")
_STATE_VERSION = 1


class HttpSourceError(RuntimeError):
    """A pull that cannot go on: exhausted retries, a client error, or an unusable checkpoint."""


class Clock(Protocol):
    """Time source of the rate limiter and the back-off (injectable so tests need not wait)."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class RateLimiter:
    """At most ``rate_per_s`` acquisitions per second: consecutive ones are ``1/rate`` s apart."""

    def __init__(self, rate_per_s: float, clock: Clock | None = None) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
        self.interval = 1.0 / rate_per_s
        self.clock = clock or SystemClock()
        self._next: float | None = None

    def acquire(self) -> None:
        """Wait until the next request may start."""
        now = self.clock.monotonic()
        if self._next is not None and now < self._next:
            self.clock.sleep(self._next - now)
            now = max(self.clock.monotonic(), self._next)
        self._next = now + self.interval


@dataclass(frozen=True)
class HttpSourceConfig:
    """Where and how to pull: the API, paging, politeness, retries and the (secret) token."""

    base_url: str
    page_size: int = 1000
    rate_limit_per_s: float = 10.0
    max_retries: int = 5
    timeout_s: float = 30.0
    token: SecretStr | None = field(default=None, repr=False)
    endpoints: dict[str, str] = field(default_factory=dict)
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    auth_source: str = "none"

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {mask_url(self.base_url)!r}")
        if self.page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {self.page_size}")
        if self.rate_limit_per_s <= 0 or self.timeout_s <= 0:
            raise ValueError("rate_limit_per_s and timeout_s must be positive")
        if self.max_retries < 0 or self.backoff_s < 0 or self.backoff_max_s < 0:
            raise ValueError("max_retries, backoff_s and backoff_max_s must not be negative")
        for table, endpoint in self.endpoints.items():
            if not endpoint.startswith("/"):
                raise ValueError(f"endpoint of {table!r} must start with '/', got {endpoint!r}")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        base_url: str | None = None,
        endpoints: dict[str, str] | None = None,
    ) -> HttpSourceConfig:
        """Config from ``MSP_HTTP_*`` settings; ``base_url`` overrides ``settings.http_base_url``.

        The token comes from the Airflow connection ``settings.http_conn_id`` when it is available,
        else from ``settings.http_token``, else there is none.
        """
        url = base_url or settings.http_base_url
        if not url:
            raise HttpSourceError("no API base URL: set MSP_HTTP_BASE_URL or pass one (--url)")
        token = _airflow_token(settings.http_conn_id)
        source = f"airflow connection {settings.http_conn_id}"
        if token is None and settings.http_token is not None:
            token, source = settings.http_token, "settings (MSP_HTTP_TOKEN)"
        return cls(
            base_url=url,
            page_size=settings.http_page_size,
            rate_limit_per_s=settings.http_rate_limit_per_s,
            max_retries=settings.http_max_retries,
            timeout_s=settings.http_timeout_s,
            token=token,
            endpoints=dict(endpoints or {}),
            auth_source=source if token is not None else "none",
        )

    def endpoint(self, table: str) -> str:
        """The endpoint path of ``table`` (default ``/<table>``)."""
        return self.endpoints.get(table, f"/{table}")

    def url(self, table: str) -> str:
        return self.base_url.rstrip("/") + self.endpoint(table)

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        return headers


def _in_airflow(conn_id: str) -> bool:
    """Inside an Airflow task, or the connection is defined the Airflow way in the environment."""
    return "AIRFLOW_CTX_DAG_ID" in os.environ or f"AIRFLOW_CONN_{conn_id.upper()}" in os.environ


def _airflow_token(conn_id: str) -> SecretStr | None:
    """The token (password, or extra ``token``) of Airflow connection ``conn_id``, if there is one."""
    if not conn_id or not _in_airflow(conn_id):
        return None
    try:
        from airflow.sdk import BaseHook
    except ImportError:
        log.debug("airflow is not importable; not looking up connection %s", conn_id)
        return None
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # not defined, no secrets backend, no supervisor: fall back
        log.info("no usable Airflow connection %s (%s); falling back", conn_id, type(exc).__name__)
        return None
    secret = conn.password or (conn.extra_dejson or {}).get("token")
    return SecretStr(str(secret)) if secret else None


@dataclass
class PullResult:
    """What one call of :func:`pull` did, and where the partition stands."""

    table: str
    ds: str
    url: str
    pages: int
    records: int
    total_pages: int
    total_records: int
    paths: list[Path]
    state_path: Path
    complete: bool
    skipped: bool = False


@dataclass
class _State:
    url: str
    pages: int = 0
    records: int = 0
    next_cursor: str | None = None
    complete: bool = False

    def dump(self, table: str, ds: str, page_size: int) -> bytes:
        doc = {
            "version": _STATE_VERSION,
            "table": table,
            "ds": ds,
            "url": self.url,
            "page_size": page_size,
            "pages": self.pages,
            "records": self.records,
            "next_cursor": self.next_cursor,
            "complete": self.complete,
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return (json.dumps(doc, indent=2) + "\n").encode()


def _load_state(path: Path) -> _State | None:
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
        state = _State(
            url=str(doc["url"]),
            pages=int(doc["pages"]),
            records=int(doc["records"]),
            next_cursor=doc["next_cursor"],
            complete=bool(doc["complete"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise HttpSourceError(f"unreadable checkpoint {path} ({exc}); pull again with restart") from None
    if not state.complete and state.pages > 0 and state.next_cursor is None:
        raise HttpSourceError(f"checkpoint {path} is incomplete but has no cursor; pull again with restart")
    return state


def _clear(folder: Path, keep_pages: int = 0) -> None:
    """Remove http pages numbered above ``keep_pages`` (and stray temp files); 0 removes the state."""
    if not folder.is_dir():
        return
    for pattern in PAGE_GLOBS:
        for path in folder.glob(pattern):
            match = _PAGE.match(path.name)
            if match is None or int(match.group(1)) > keep_pages:
                path.unlink(missing_ok=True)
    if keep_pages == 0:
        (folder / STATE_FILE).unlink(missing_ok=True)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _parse_page(body: bytes) -> tuple[list[dict[str, Any]], str | None]:
    doc = json.loads(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ValueError('expected an object with a "data" list')
    data, cursor = doc["data"], doc.get("next_cursor")
    if not all(isinstance(record, dict) for record in data):
        raise ValueError('"data" holds something other than objects')
    if cursor is not None and not isinstance(cursor, str | int):
        raise ValueError('"next_cursor" is neither a string nor null')
    return data, None if cursor is None or cursor == "" else str(cursor)


class _Client:
    """GET with rate limiting, and retries with exponential back-off and jitter."""

    def __init__(
        self,
        config: HttpSourceConfig,
        session: requests.Session,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.config = config
        self.session = session
        self.clock = clock
        self.rng = rng
        self.limiter = RateLimiter(config.rate_limit_per_s, clock)
        self.headers = config.headers()

    def backoff(self, attempt: int) -> float:
        """Equal jitter: half of the capped exponential delay, plus a random share of the other half."""
        ceiling = min(self.config.backoff_max_s, self.config.backoff_s * 2 ** (attempt - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def get_page(self, url: str, params: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
        shown = f"{mask_url(url)}?{urlencode(params)}"
        attempts = self.config.max_retries + 1
        for attempt in range(1, attempts + 1):
            self.limiter.acquire()
            status: int | None = None
            wait: float | None = None
            try:
                response = self.session.get(url, params=params, headers=self.headers, timeout=self.config.timeout_s)
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 429 or status >= 500:
                    problem = f"HTTP {status} {response.reason}"
                    wait = _retry_after(response.headers.get("Retry-After"))
                elif status >= 400:
                    raise HttpSourceError(
                        f"GET {shown} answered HTTP {status} {response.reason}: {response.text[:2000]}"
                    )
                else:
                    try:
                        return _parse_page(response.content)
                    except ValueError as exc:
                        problem = f"malformed JSON in HTTP {status} response: {exc}"
            if attempt == attempts:
                raise HttpSourceError(
                    f"GET {shown} failed after {attempts} attempts; last status "
                    f"{status if status is not None else 'none (no response)'}: {problem}"
                )
            delay = wait if wait is not None else self.backoff(attempt)
            log.warning(
                "GET %s failed (%s), attempt %d of %d; retrying in %.2f s",
                shown,
                problem,
                attempt,
                attempts,
                delay,
            )
            self.clock.sleep(delay)
        raise AssertionError("unreachable")


def pull(
    table: str,
    ds: str | date,
    landing_root: Path,
    config: HttpSourceConfig,
    *,
    session: requests.Session | None = None,
    restart: bool = False,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> PullResult:
    """Pull every page of ``table`` for ``ds`` into the landing zone, resuming from the checkpoint."""
    if not _TABLE.match(table):
        raise ValueError(f"table {table!r} is not a plain identifier")
    day = ds if isinstance(ds, date) else date.fromisoformat(ds)
    ds_text = day.isoformat()
    folder = Path(landing_root) / table / f"ds={ds_text}"
    state_path = folder / STATE_FILE
    url = config.url(table)
    shown = mask_url(url)

    if restart:
        log.info("%s ds=%s: restart, removing earlier http pages in %s", table, ds_text, folder)
        _clear(folder)
    state = _load_state(state_path)
    if state is not None and state.complete:
        log.info("%s ds=%s: already complete (%d pages); nothing to fetch", table, ds_text, state.pages)
        return PullResult(
            table=table,
            ds=ds_text,
            url=shown,
            pages=0,
            records=0,
            total_pages=state.pages,
            total_records=state.records,
            paths=[],
            state_path=state_path,
            complete=True,
            skipped=True,
        )
    if state is None:
        _clear(folder)
        state = _State(url=url)
    elif state.url != url:
        raise HttpSourceError(
            f"checkpoint {state_path} belongs to {mask_url(state.url)}, not {shown}; pull again with restart"
        )
    else:
        _clear(folder, keep_pages=state.pages)
        log.info("%s ds=%s: resuming at page %d from %s", table, ds_text, state.pages + 1, state_path)

    own_session = session is None
    client = _Client(config, session or requests.Session(), clock or SystemClock(), rng or random.Random())
    log.info("%s ds=%s: pulling from %s (auth: %s)", table, ds_text, shown, config.auth_source)
    pages = records = 0
    paths: list[Path] = []
    try:
        while True:
            params = {"ds": ds_text, "limit": str(config.page_size)}
            if state.next_cursor is not None:
                params["cursor"] = state.next_cursor
            data, next_cursor = client.get_page(url, params)
            if next_cursor is not None and next_cursor == state.next_cursor:
                raise HttpSourceError(f"GET {shown} returned its own cursor {next_cursor!r} again: loop")
            page_path = folder / f"{PAGE_PREFIX}{state.pages + 1:05d}.jsonl"
            lines = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in data)
            write_atomic(page_path, lines.encode())
            state.pages += 1
            state.records += len(data)
            state.next_cursor = next_cursor
            state.complete = next_cursor is None
            write_atomic(state_path, state.dump(table, ds_text, config.page_size))
            pages += 1
            records += len(data)
            paths.append(page_path)
            log.info("%s ds=%s: page %d, %d records", table, ds_text, state.pages, len(data))
            if state.complete:
                break
    finally:
        if own_session:
            client.session.close()
    log.info(
        "%s ds=%s: complete, %d pages / %d records (%d / %d this run)",
        table,
        ds_text,
        state.pages,
        state.records,
        pages,
        records,
    )
    return PullResult(
        table=table,
        ds=ds_text,
        url=shown,
        pages=pages,
        records=records,
        total_pages=state.pages,
        total_records=state.records,
        paths=paths,
        state_path=state_path,
        complete=True,
    )
