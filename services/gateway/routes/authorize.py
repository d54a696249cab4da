"""``/oauth/authorize``: the page where a user signs in and approves an app (OAuth's authorization-code grant;
the rules are the graph service's, services/graph/authorization.py).

``GET`` checks the request (the app, its redirect URI, the scopes, the PKCE challenge) and shows a form: the
app's name and the scopes it asks for, a login and a password, approve and deny. ``POST`` is that form: approved
with the right password, the browser is sent (302) to the redirect URI with ``code`` and ``state``; for
``urn:ietf:wg:oauth:2.0:oob`` the code is shown on the page to be copied. Denied, the redirect carries
``error=access_denied``. A request that is not valid is never redirected (the address may not be the app's): it
is answered with a 4xx, ``{"error": ...}`` as every endpoint answers, or an HTML page saying the same to a
browser (one whose ``Accept`` names text/html). A wrong password shows the form again, with a 401.

A password is checked here as at ``POST /oauth/token``, so both count in the same per-IP ``login`` bucket
(ratelimit.py). There are no sessions: each approval asks for the password (as ``force_login`` would).
"""

from __future__ import annotations

import html
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kicau.web import ApiError, error_response
from services.gateway import openapi as doc
from services.gateway.deps import Services, Settings
from services.gateway.ip_blocks import client_address_header
from services.gateway.params import read_oauth_params
from services.gateway.upstreams import UpstreamResponse

router = APIRouter(tags=["oauth"])

OOB: Final = "urn:ietf:wg:oauth:2.0:oob"
# What the page carries from the request to its form, and on to the graph service.
REQUEST_FIELDS: Final = ("response_type", "client_id", "redirect_uri", "scope", "code_challenge",
                         "code_challenge_method")
# Sent with every page: not cached (it may show a code), not framed (a framed approve button can be clicked
# for the user), nothing loaded from anywhere, no Referer carrying the request's parameters.
PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
_STYLE: Final = ("body{font-family:sans-serif;max-width:28em;margin:3em auto;padding:0 1em}"
                 "label,input,button{display:block;width:100%;margin:.3em 0}.error{color:#a00}")


# Every parameter the authorization's form and request read; others are ignored, as OAuth asks (RFC 6749 3.1).
KNOWN_FIELDS: Final = (*REQUEST_FIELDS, "state", "login", "password", "decision")


def _strings(params: dict[str, Any]) -> dict[str, str]:
    """The request's string parameters (``scope`` may come as a list, as Mastodon.py sends ``scopes``). One it
    reads given as anything else (a JSON number, an object) is a malformed request: 400, OAuth's
    ``invalid_request``, rather than the parameter taken as missing (a scope of 5 read as the default scope)."""
    found: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = " ".join(value)
        if isinstance(value, str):
            found[key] = value
        elif key in KNOWN_FIELDS and value is not None:
            raise ApiError(400, f"Validation failed: {key} must be a string")
    return found


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                        f"<meta name=\"viewport\" content=\"width=device-width\"><style>{_STYLE}</style></head>"
                        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>",
                        status_code=status_code, headers=PAGE_HEADERS)


def _refused(request: Request, status_code: int, message: str) -> Response:
    if _wants_html(request):
        return _page("Authorization failed", f"<p class=\"error\">{html.escape(message)}</p>", status_code)
    return error_response(status_code, message, headers=PAGE_HEADERS)


def _upstream_error(answer: UpstreamResponse) -> str:
    try:
        message = answer.json().get("error")
    except (ValueError, AttributeError):
        message = None
    return message if isinstance(message, str) else "The request could not be authorized."


def _form(params: dict[str, str], shown: dict[str, Any], error: str | None = None) -> str:
    hidden = "".join(f"<input type=\"hidden\" name=\"{name}\" value=\"{html.escape(params[name])}\">"
                     for name in (*REQUEST_FIELDS, "state") if params.get(name))
    app = html.escape(shown["client_name"])
    if shown.get("website"):  # as text: the app chose it, the page vouches for nothing
        app = f"{app} ({html.escape(shown['website'])})"
    scopes = "".join(f"<li>{html.escape(scope)}</li>" for scope in shown["scopes"])
    problem = f"<p class=\"error\" role=\"alert\">{html.escape(error)}</p>" if error else ""
    login = html.escape(params.get("login", ""))
    return (f"<p><strong>{app}</strong> asks to use your account with these permissions:</p><ul>{scopes}</ul>"
            f"{problem}<form method=\"post\" action=\"/oauth/authorize\">{hidden}"
            "<label for=\"login\">Username or e-mail address</label>"
            f"<input id=\"login\" name=\"login\" autocomplete=\"username\" required value=\"{login}\">"
            "<label for=\"password\">Password</label>"
            "<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\">"
            "<button name=\"decision\" value=\"approve\" type=\"submit\">Authorize</button>"
            "<button name=\"decision\" value=\"deny\" type=\"submit\" formnovalidate>Deny</button></form>")


def _redirect(uri: str, **parameters: str | None) -> RedirectResponse:
    """``uri`` with ``parameters`` added to its query (RFC 6749 section 4.1.2: its own query is kept)."""
    parts = urlsplit(uri)
    added = urlencode({k: v for k, v in parameters.items() if v is not None})
    query = f"{parts.query}&{added}" if parts.query else added
    return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302, headers=PAGE_HEADERS)


AUTHORIZE_QUERY: Final = {"parameters": [
    doc.query("response_type", {"type": "string"}, "code (the only response type)"),
    doc.query("client_id", {"type": "string"}, "The app's client_id"),
    doc.query("redirect_uri", {"type": "string"}, "One of the app's redirect URIs (optional if it has one)"),
    doc.query("scope", {"type": "string"}, "Space-separated scopes within the app's; read if not given"),
    doc.query("state", {"type": "string"}, "Returned as given with the code"),
    doc.query("code_challenge", {"type": "string"}, "PKCE: base64url SHA-256 of the code verifier"),
    doc.query("code_challenge_method", {"type": "string"}, "PKCE: S256"),
]}
_HTML_PAGE: Final = {"content": {"text/html": {"schema": {"type": "string"}}}}


@router.get("/oauth/authorize", openapi_extra=AUTHORIZE_QUERY,
            responses={200: {"description": "The sign-in and approval form", **_HTML_PAGE},
                       **doc.errors(400)})
@router.get("/oauth/authorize/", include_in_schema=False)  # toot's login URL ends so
async def authorization_form(request: Request, services: Services, settings: Settings) -> Response:
    params = _strings(await read_oauth_params(request, settings.max_body_bytes))
    asked = {name: params.get(name) for name in REQUEST_FIELDS}
    answer = await services.graph.call("POST", "/internal/oauth/authorization_request", json=asked)
    if answer.status_code != 200:
        return _refused(request, answer.status_code, _upstream_error(answer))
    return _page("Authorize an app", _form(params, answer.json()))


@router.post("/oauth/authorize", openapi_extra=doc.AUTHORIZE_BODY,
             responses={200: {"description": "The code to copy (urn:ietf:wg:oauth:2.0:oob), or the form again",
                              **_HTML_PAGE},
                        302: {"description": "Back to the app's redirect URI with code and state (or error)"},
                        **doc.errors(400, 401, 403, 413, 415)})
async def authorization_decision(request: Request, services: Services, settings: Settings) -> Response:
    params = _strings(await read_oauth_params(request, settings.max_body_bytes))
    asked = {name: params.get(name) for name in REQUEST_FIELDS}
    state = params.get("state")
    if params.get("decision") == "deny":
        checked = await services.graph.call("POST", "/internal/oauth/authorization_request", json=asked)
        if checked.status_code != 200:
            return _refused(request, checked.status_code, _upstream_error(checked))
        redirect_uri = checked.json()["redirect_uri"]
        if redirect_uri == OOB:
            return _refused(request, 403, "The authorization was denied.")
        return _redirect(redirect_uri, error="access_denied",
                         error_description="The resource owner denied the request.", state=state)
    answer = await services.graph.call("POST", "/internal/oauth/authorize", json={
        **asked, "login": params.get("login"), "password": params.get("password")},
        headers=client_address_header(request.scope, settings))
    if answer.status_code == 401 and _wants_html(request):
        # A wrong password: the form again, to try once more (the request itself was found valid).
        shown = await services.graph.call("POST", "/internal/oauth/authorization_request", json=asked)
        if shown.status_code == 200:
            return _page("Authorize an app", _form(params, shown.json(), _upstream_error(answer)), 401)
    if answer.status_code != 200:
        return _refused(request, answer.status_code, _upstream_error(answer))
    granted = answer.json()
    if granted["redirect_uri"] == OOB:
        code = html.escape(granted["code"])
        return _page("Authorization code", "<p>Copy this code and paste it into the app:</p>"
                     f"<input id=\"code\" readonly value=\"{code}\">")
    return _redirect(granted["redirect_uri"], code=granted["code"], state=state)
