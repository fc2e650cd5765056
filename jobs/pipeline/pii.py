"""The salt for hashing PII: from settings, or a per-install random salt kept under var/secrets."""

from __future__ import annotations

import logging
import os
import secrets

from jobs.settings import Settings

log = logging.getLogger(__name__)


def pii_salt(settings: Settings) -> str:
    """``MSP_PII_SALT`` if set; else a random salt created once (mode 0600) and reused.

    Hashes stay stable across runs of one installation, so joins on hashed e-mail keep working;
    set ``MSP_PII_SALT`` (from a secret store) wherever several installations must agree.
    """
    if settings.pii_salt is not None:
        return settings.pii_salt.get_secret_value()
    path = settings.path(settings.data_root).parent / "secrets" / "pii_salt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        log.info("created a per-install PII salt at %s (set MSP_PII_SALT to share one)", path)
    return path.read_text().strip()
