"""Masking of passwords in storage URLs before they reach a log, an error or the terminal."""

from __future__ import annotations

import re


MASK = "***"

# `scheme://user:password@host`: the password is everything between the first colon after the
# user name and the last `@` of the URL. `@` and `/` may both occur inside an unencoded password
# (SQLAlchemy accepts them), so the match is greedy up to the last `@` before whitespace. A
# later `@` in the same URL widens the mask, which errs on the safe side.
# NOTE: a password containing whitespace is only masked up to the whitespace.
_USERINFO_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):\S*@")

# `?password=...` and similar query parameters (libpq, PyMySQL and redis-py accept them).
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)[^&\s#]*", re.IGNORECASE)


def mask_url(text: str) -> str:
    """Replace every password in the URLs of ``text`` with ``***``.

    Works on a bare URL and on any message that contains URLs. The user name, host, port and
    database stay readable, so that the masked URL still identifies the storage.

    Example:

        .. code-block:: python

            from optuna_fractal._urls import mask_url

            assert (
                mask_url("postgresql+psycopg2://alice:s3cret@db.example:5432/hpo")
                == "postgresql+psycopg2://alice:***@db.example:5432/hpo"
            )

    Args:
        text: A URL or a message containing URLs.

    Returns:
        ``text`` with each password replaced by ``***``.
    """
    masked = _USERINFO_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}", masked)
