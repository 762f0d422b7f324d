"""One POST to a receiver, and what its answer means: delivered or :class:`DeliveryFailed`.

Redirects are never followed (urllib would turn the POST into a body-less GET to
another origin, with the credentials and the signature): a 3xx is a failed delivery
(``redirected``), retried like a 5xx. ``signature`` is the HMAC a webhook receiver checks.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from alerting.errors import DeliveryFailed
from alerting.settings import redact_url_secrets


def signature(secret: bytes, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body``: ``sha256=`` and the hex HMAC.

    A receiver recomputes it over the raw request body and compares in constant time:

    >>> body = b'{"id":"1"}'
    >>> received = signature(b"key", body)
    >>> hmac.compare_digest(received, signature(b"key", body)), received[:15]
    (True, 'sha256=77cb8fd1')
    """
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


#: POST ``body`` to ``url`` with ``headers``, never following a redirect; returns (status,
#: start of the response body; for a 3xx where it points, as an origin only) and raises
#: OSError (urllib.error.URLError, TimeoutError, ...) when no answer came
Post = Callable[[str, bytes, Mapping[str, str], float], tuple[int, str]]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Hand every 3xx back as the answer instead of following it.

    urllib follows a 302 by sending a body-less GET, with our Authorization header and
    signature, to wherever Location points (another origin too), and returns that GET's
    200: the alert lost, counted as sent, its credentials handed over.
    """

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> None:
        return None  # urllib then raises HTTPError with the 3xx


_OPENER = urllib.request.build_opener(_NoRedirects)


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: where it goes, without what it carries.

    >>> origin("https://user:pw@hooks.example.com:8443/alerts?token=t0k")
    'https://hooks.example.com:8443'
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _redirect_text(url: str, location: str | None) -> str:
    # the origin only: the Location (which a 3xx's body usually repeats) may carry secrets
    if not location:
        return "redirect without a Location (not followed)"
    try:
        target = urllib.parse.urljoin(url, location)
    except ValueError:
        return "redirect to an unreadable Location (not followed)"
    return f"redirect to {origin(target)} (not followed)"


def urllib_post(
    url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
) -> tuple[int, str]:
    """:data:`Post` on the standard library."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            return int(response.status), response.read(300).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        with exc:
            if 300 <= exc.code < 400:
                return int(exc.code), _redirect_text(url, exc.headers.get("Location"))
            text = exc.read(300).decode(errors="replace") if exc.fp is not None else ""
            return int(exc.code), text


def post_checked(
    post: Post, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
) -> None:
    """POST and raise :class:`DeliveryFailed` unless the answer is 2xx.

    A 3xx is a failure (``redirected``, retryable, as a moved endpoint can move back);
    the request never goes where it points. The detail never holds the URL's secrets:
    servers echo the URL in their error pages, http.client in its exceptions.
    """
    try:
        _post_checked(post, url, body, headers, timeout_s)
    except DeliveryFailed as exc:
        detail = redact_url_secrets(exc.detail, url)
        raise DeliveryFailed(exc.reason, detail, exc.retryable) from None


def _post_checked(
    post: Post, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
) -> None:
    try:
        status, text = post(url, body, headers, timeout_s)
    except TimeoutError as exc:
        raise DeliveryFailed("timeout", f"no answer within {timeout_s:g}s ({exc})", True) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            raise DeliveryFailed("timeout", f"no answer within {timeout_s:g}s", True) from None
        raise DeliveryFailed("connection", str(reason), True) from None
    # ConnectionResetError, RemoteDisconnected, IncompleteRead, InvalidURL, ...
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise DeliveryFailed("connection", f"{type(exc).__name__}: {exc}", True) from None
    if 200 <= status < 300:
        return
    detail = f"HTTP {status} {text.strip()[:200]}".strip()
    if 300 <= status < 400:
        raise DeliveryFailed("redirected", detail, True)
    if status in (408, 429):
        raise DeliveryFailed("throttled", detail, True)
    if status >= 500:
        raise DeliveryFailed("server_error", detail, True)
    raise DeliveryFailed("rejected", detail, False)
