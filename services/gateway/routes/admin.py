"""Mastodon's admin API for accounts, reports and e-mail domain blocks (services/graph/admin.py and
services/graph/email_blocks.py hold the rules; kicau/staff.py the roles): the gateway checks the token's ``admin:*``
scope, reads Mastodon's v1 and v2 parameters into the graph service's one form, and completes each Admin::Report with
its statuses (from the timeline service) and the instance's rules it names (from the gateway's own
``instance_rules``).

A report's statuses are rendered as its reporter sees them: the reporter could read them when reporting, and a
status whose author has since deleted it, or that its reporter can no longer see, is left out, as Mastodon's
report shows only the statuses that still exist. Those of a suspended author are shown (``moderating``), as the
report is how staff judge the suspension.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from kicau.account_warnings import MAX_TEXT
from kicau.email_domain_blocks import MAX_DOMAIN
from kicau.ids import parse_id
from kicau.instance_dimensions import DIMENSIONS
from kicau.instance_measures import MEASURES, TAG_MEASURES
from kicau.ip_blocks import MAX_COMMENT, MAX_EXPIRES_IN, SEVERITIES
from kicau.reports import CATEGORIES, MAX_STATUSES
from kicau.tokens import TokenInfo
from kicau.web import ApiError, flag
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Common, Services, Settings, cursor, page_limit, record_id
from services.gateway.pagination import link_header
from services.gateway.params import nested, optional_flag, optional_str, read_params, reject_nul
from services.gateway.routes.accounts import offset_param, trends_page
from services.gateway.upstreams import UpstreamResponse, passthrough, raise_for_error

router = APIRouter(tags=["admin"])

AccountsReader = Annotated[TokenInfo, require("admin:read:accounts")]
AccountsWriter = Annotated[TokenInfo, require("admin:write:accounts")]
ReportsReader = Annotated[TokenInfo, require("admin:read:reports")]
ReportsWriter = Annotated[TokenInfo, require("admin:write:reports")]
BlocksReader = Annotated[TokenInfo, require("admin:read:email_domain_blocks")]
BlocksWriter = Annotated[TokenInfo, require("admin:write:email_domain_blocks")]
AddressBlocksReader = Annotated[TokenInfo, require("admin:read:canonical_email_blocks")]
AddressBlocksWriter = Annotated[TokenInfo, require("admin:write:canonical_email_blocks")]
IpBlocksReader = Annotated[TokenInfo, require("admin:read:ip_blocks")]
IpBlocksWriter = Annotated[TokenInfo, require("admin:write:ip_blocks")]
AdminReader = Annotated[TokenInfo, require("admin:read")]  # trends and measures: Mastodon's broad scopes
AdminWriter = Annotated[TokenInfo, require("admin:write")]
Hidden = Query(include_in_schema=False)  # declared in openapi_extra, with the types the route really accepts

# Longer than any network's text (an IPv6 address written out in full, with a zone and a prefix).
MAX_IP: Final = 100
# Longer than any address a registration accepts (services/graph/service.py EMAIL_RE: 64 + 1 + 255 + 1 + 63).
MAX_EMAIL: Final = 2 * MAX_DOMAIN
PAGE_DEFAULT: Final = 100
PAGE_MOST: Final = 200
# The timeline service's statuses-by-id route takes this many ids a request.
STATUSES_A_READ: Final = 40
ACTIONS: Final = ("none", "sensitive", "disable", "silence", "suspend")
V1_STATES: Final = ("active", "pending", "disabled", "silenced", "suspended", "sensitized")
V2_STATES: Final = ("active", "pending", "disabled", "silenced", "suspended")
_TEXT_FILTERS: Final = ("username", "display_name", "email", "ip", "by_domain")

ACCOUNTS_PAGE = {"parameters": [
    *doc.page_parameters("max_id", "since_id", "min_id"),
    *(doc.query(name, doc.text(max_length=300), f"Only accounts whose {name} matches") for name in _TEXT_FILTERS),
]}
ACCOUNTS_V1_PAGE = {"parameters": [
    *ACCOUNTS_PAGE["parameters"],
    *(doc.query(name, doc.BOOLEAN, f"Only {name} accounts") for name in ("local", "remote", "staff", *V1_STATES)),
]}
ACCOUNTS_V2_PAGE = {"parameters": [
    *ACCOUNTS_PAGE["parameters"],
    doc.query("origin", {"type": "string", "enum": ["local", "remote"]}, "Local or remote accounts"),
    doc.query("status", {"type": "string", "enum": list(V2_STATES)}, "Accounts in this moderation state"),
    doc.query("permissions", {"type": "string", "enum": ["staff"]}, "Only staff"),
    doc.query("role_ids[]", {"type": "array", "items": doc.CURSOR, "maxItems": 40}, "Only accounts of these roles"),
    doc.query("invited_by", doc.CURSOR, "Only accounts this account invited"),
]}
REPORTS_PAGE = {"parameters": [
    *doc.page_parameters("max_id", "since_id", "min_id"),
    doc.query("resolved", doc.BOOLEAN, "Resolved reports (unresolved ones by default)"),
    doc.query("unresolved", doc.BOOLEAN, "With resolved: every report"),
    doc.query("account_id", doc.CURSOR, "Reports filed by this account"),
    doc.query("target_account_id", doc.CURSOR, "Reports against this account"),
]}
ACTION_BODY = doc.body(doc.params({
    "type": doc.nullable({"type": "string", "enum": list(ACTIONS)}),
    "report_id": doc.nullable(doc.CURSOR),
    "warning_preset_id": doc.nullable(doc.CURSOR),
    "text": doc.nullable(doc.text(max_length=MAX_TEXT)),
    "send_email_notification": doc.nullable(doc.BOOLEAN),
}), required=False)
REPORT_CHANGE_BODY = doc.body(doc.params({
    "category": doc.nullable({"type": "string", "enum": list(CATEGORIES)}),
    "rule_ids": doc.nullable({"anyOf": [doc.CURSOR, {"type": "array", "items": doc.CURSOR,
                                                      "maxItems": MAX_STATUSES}]}),
}), required=False)

BLOCK_BODY = doc.body(doc.params({
    "domain": doc.text(max_length=MAX_DOMAIN * 2, blank=False),
    "allow_with_approval": doc.nullable(doc.BOOLEAN),
}, "domain"))
BLOCK_ANSWER = {**doc.ok(doc.AdminEmailDomainBlock), **doc.errors(401, 403, 404)}
ADDRESS_BODY = doc.body(doc.params({
    "email": doc.nullable(doc.text(max_length=MAX_EMAIL)),
    "canonical_email_hash": doc.nullable(doc.text(max_length=64)),
}))
ADDRESS_ANSWER = {**doc.ok(doc.AdminCanonicalEmailBlock), **doc.errors(401, 403, 404)}
# An address or a network in CIDR notation; what is none is a 422 (the graph service parses it).
_IP_FIELDS: dict[str, Any] = {
    "ip": doc.text(max_length=MAX_IP, blank=False),
    "severity": {"type": "string", "enum": list(SEVERITIES)},
    "comment": doc.nullable(doc.text(max_length=MAX_COMMENT)),
    "expires_in": doc.nullable({"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_EXPIRES_IN},
                                          {"type": "string", "pattern": "^[0-9]{1,10}$"}]}),
}
IP_BLOCK_BODY = doc.body(doc.params(_IP_FIELDS, "ip", "severity"))
IP_BLOCK_CHANGE_BODY = doc.body(doc.params({
    **{name: doc.nullable(schema) for name, schema in _IP_FIELDS.items() if name != "expires_in"},
    # Empty: the block no longer expires.
    "expires_in": doc.nullable({"anyOf": [_IP_FIELDS["expires_in"], {"enum": [""]}]}),
}), required=False)
IP_BLOCK_ANSWER = {**doc.ok(doc.AdminIpBlock), **doc.errors(401, 403, 404)}
ACCOUNT_ANSWER = {**doc.ok(doc.AdminAccount), **doc.errors(401, 403, 404)}
ACCOUNT_CHANGE = {**doc.ok(doc.AdminAccount), **doc.errors(401, 403, 404)}
REPORT_ANSWER = {**doc.ok(doc.AdminReport), **doc.errors(401, 403, 404)}


# Accounts --------------------------------------------------------------------------------------------------------

@router.get("/api/v1/admin/accounts", openapi_extra={**ACCOUNTS_V1_PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.AdminAccount]), **doc.errors(400, 401, 403, 422)})
async def accounts_v1(request: Request, token: AccountsReader, services: Services, common: Common) -> Response:
    """Accounts for a moderator (Mastodon's v1 filters: ``remote``, ``by_domain``, ``active``, ``pending``,
    ``disabled``, ``silenced``, ``suspended``, ``sensitized``, ``username``, ``display_name``, ``email``, ``ip``,
    ``staff``), newest first, 100 a page (at most 200)."""
    query = request.query_params
    given = {name: flag(query[name], name) for name in ("local", "remote", "staff", *V1_STATES) if name in query}
    states = [state for state in V1_STATES if given.get(state)]
    # One state is filtered by: a state no Kicau account is in before the others, as it lists nothing whatever else.
    chosen = sorted(states, key=("pending", "sensitized", "suspended", "silenced", "disabled", "active").index)
    params: list[tuple[str, Any]] = [("remote", given.get("remote", False)), ("staff", given.get("staff", False))]
    if chosen:
        params.append(("status", chosen[0]))
    return await _accounts(request, token, services, common, params)


@router.get("/api/v2/admin/accounts", openapi_extra={**ACCOUNTS_V2_PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.AdminAccount]), **doc.errors(400, 401, 403, 422)})
async def accounts_v2(request: Request, token: AccountsReader, services: Services, common: Common) -> Response:
    """Accounts for a moderator (Mastodon's v2 filters: ``origin``, ``status``, ``permissions``, ``role_ids[]``,
    ``invited_by``, ``username``, ``display_name``, ``by_domain``, ``email``, ``ip``), newest first, 100 a page (at
    most 200)."""
    query = request.query_params
    origin, status, permissions = query.get("origin") or None, query.get("status") or None, query.get("permissions")
    if origin not in (None, "local", "remote"):
        raise ApiError(400, f"Unknown origin: {origin}")
    if status not in (None, *V2_STATES):
        raise ApiError(400, f"Unknown status: {status}")
    if permissions not in (None, "", "staff"):
        raise ApiError(400, f"Unknown permissions: {permissions}")
    params: list[tuple[str, Any]] = [("remote", origin == "remote"), ("staff", permissions == "staff")]
    if status is not None:
        params.append(("status", status))
    for raw in query.getlist("role_ids[]") + query.getlist("role_ids"):
        if raw == "":
            continue
        try:
            role_id = int(raw)
        except ValueError:
            raise ApiError(400, "role_ids must be role ids") from None
        # An id past any role's is a role no account has (0: no role's id), not a malformed request.
        params.append(("role_ids", role_id if -(1 << 31) <= role_id < 1 << 31 else 0))
    invited_by = query.get("invited_by")
    if invited_by:
        inviter = parse_id(invited_by)
        if inviter is None:
            raise ApiError(400, "invited_by must be an account id")
        params.append(("invited_by", inviter))  # Kicau has no invitations: any inviter lists nothing
    return await _accounts(request, token, services, common, params)


async def _accounts(request: Request, token: TokenInfo, services: Services, common: Common,
                    params: list[tuple[str, Any]]) -> Response:
    query = request.query_params
    for name in _TEXT_FILTERS:
        value = query.get(name)
        if value:
            params.append((name, reject_nul(name, value)))
    params.extend(_page(request))
    answer = await services.graph.call("GET", "/internal/admin/accounts", params=params, token=token)
    return _paged(request, common, answer)


@router.get("/api/v1/admin/accounts/{account_id}", openapi_extra=doc.BEARER, responses=ACCOUNT_ANSWER)
async def account(account_id: str, token: AccountsReader, services: Services) -> Response:
    """One account for a moderator: the Admin::Account."""
    return passthrough(await services.graph.call("GET", f"/internal/admin/accounts/{record_id(account_id)}",
                                                 token=token))


@router.post("/api/v1/admin/accounts/{account_id}/action", openapi_extra={**ACTION_BODY, **doc.BEARER},
             responses={**doc.ok(dict[str, Any]), **doc.errors(400, 401, 403, 404, 413, 415, 422)})
async def act(account_id: str, request: Request, token: AccountsWriter, services: Services,
              settings: Settings) -> Response:
    """A moderation action on an account: ``type`` ``none`` (a note in the report only), ``sensitive`` (each of its
    statuses, older ones too, reads ``sensitive: true`` to everyone but its author and never trends, until
    ``unsensitive``), ``disable`` (its login: its tokens are refused and its streams end), ``silence`` (limited: its
    statuses left out of the public timelines, hashtags, trends and public streams, its notifications to those who
    do not follow it filtered by their policies, until ``unsilence``) or ``suspend`` (its login as for ``disable``,
    and its profile, statuses and notifications left out of every read until ``unsuspend``). With ``report_id`` (a
    report against the account), the report is resolved by this moderator; every type but ``none`` resolves every
    open report against the account. Each action leaves a warning with ``text`` (5,000 characters at most) and the
    report's statuses, which the account is told of as a ``moderation_warning`` notification unless
    ``send_email_notification`` is false (Kicau sends no e-mail); ``warning_preset_id`` is accepted, and names no
    preset (Kicau keeps none)."""
    given = await read_params(request, settings.max_body_bytes)
    kind = optional_str(given, "type") or "none"
    if kind not in ACTIONS:
        raise ApiError(422, f"Validation failed: type must be one of {', '.join(ACTIONS)}")
    body: dict[str, Any] = {"type": kind}
    raw_report = given.get("report_id")
    if raw_report not in (None, ""):
        report_id = parse_id(str(raw_report)) if isinstance(raw_report, str | int) else None
        if report_id is None or isinstance(raw_report, bool):
            raise ApiError(422, "Validation failed: report_id must be a report id")
        body["report_id"] = report_id
    text = optional_str(given, "text") or ""
    if len(text) > MAX_TEXT:
        raise ApiError(422, f"Validation failed: text is too long (maximum is {MAX_TEXT} characters)")
    body["text"] = reject_nul("text", text)
    body["notify"] = optional_flag(given, "send_email_notification") is not False
    return passthrough(await services.graph.call(
        "POST", f"/internal/admin/accounts/{record_id(account_id)}/action", json=body, token=token))


def _account_change(change: str, what: str, responses: dict[int | str, dict[str, Any]] = ACCOUNT_CHANGE) -> None:
    async def route(account_id: str, token: AccountsWriter, services: Services) -> Response:
        return passthrough(await services.graph.call(
            "POST", f"/internal/admin/accounts/{record_id(account_id)}/{change}", token=token))

    route.__name__ = f"admin_account_{change}"
    route.__doc__ = what
    router.post(f"/api/v1/admin/accounts/{{account_id}}/{change}", openapi_extra=doc.BEARER,
                responses=responses)(route)


_account_change("enable", "Give a disabled account its login back; the Admin::Account.")
_account_change("unsilence", "Lift a limit (silence): the account's statuses show in public reads again; the "
                             "Admin::Account (an account not limited is left as it is).")
_account_change("unsensitive", "Undo a sensitive mark: each of the account's statuses reads with its own flag again; "
                               "the Admin::Account (an account not marked is left as it is).")
_account_change("unsuspend", "Give a suspended account back its login, profile, statuses and notifications; the "
                             "Admin::Account (403 for an account not suspended, as Mastodon answers).")
_account_change("approve", "Let in an account whose sign-up waits for approval (services/graph/sign_ups.py): it may "
                           "sign in, and others find it; the Admin::Account (403 for one not waiting, as Mastodon "
                           "answers).")
_account_change("reject", "Delete an account whose sign-up waits for approval, reserving nothing: its username and "
                          "e-mail address may be registered again; ``{}`` (403 for one not waiting, as Mastodon "
                          "answers).", {**doc.ok(dict[str, Any]), **doc.errors(401, 403, 404)})


# Reports ---------------------------------------------------------------------------------------------------------

@router.get("/api/v1/admin/reports", openapi_extra={**REPORTS_PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.AdminReport]), **doc.errors(400, 401, 403, 422)})
async def reports(request: Request, token: ReportsReader, services: Services, common: Common,
                  settings: Settings) -> Response:
    """Reports for a moderator, newest first, 100 a page (at most 200): unresolved ones, or with ``resolved``
    the resolved ones, or with both ``resolved`` and ``unresolved`` all; ``account_id`` (filed by) and
    ``target_account_id`` (against) narrow them."""
    query = request.query_params
    resolved = flag(query["resolved"], "resolved") if "resolved" in query else False
    unresolved = flag(query["unresolved"], "unresolved") if "unresolved" in query else False
    params: list[tuple[str, Any]] = [("state", "all" if resolved and unresolved else
                                      "resolved" if resolved else "open"), *_page(request)]
    params += _account_filters(request)
    answer = await services.graph.call("GET", "/internal/admin/reports", params=params, token=token)
    raise_for_error(answer)
    listed = await asyncio.gather(*(_complete(report, services, settings.instance_rules) for report in answer.json()))
    link = link_header(request, common.public_url, answer.headers.get("x-kicau-next"),
                       answer.headers.get("x-kicau-prev"))
    return JSONResponse(listed, headers={"Link": link} if link else None)


@router.get("/api/v1/admin/reports/{report_id}", openapi_extra=doc.BEARER, responses=REPORT_ANSWER)
async def report(report_id: str, token: ReportsReader, services: Services, settings: Settings) -> Response:
    """One report for a moderator: the Admin::Report."""
    answer = await services.graph.call("GET", f"/internal/admin/reports/{record_id(report_id)}", token=token)
    return await _report(answer, services, settings.instance_rules)


@router.put("/api/v1/admin/reports/{report_id}", openapi_extra={**REPORT_CHANGE_BODY, **doc.BEARER},
            responses={**REPORT_ANSWER, **doc.errors(400, 401, 403, 404, 413, 415, 422)})
async def classify(report_id: str, request: Request, token: ReportsWriter, services: Services,
                   settings: Settings) -> Response:
    """Change a report's ``category`` and the instance's rules it names (``rule_ids[]``: kept only under
    ``violation``, as Mastodon keeps them, and ignored with another category); the Admin::Report."""
    given = await read_params(request, settings.max_body_bytes)
    body: dict[str, Any] = {}
    category = optional_str(given, "category") or None
    if category is not None:
        if category not in CATEGORIES:
            raise ApiError(422, f"Validation failed: category must be one of {', '.join(CATEGORIES)}")
        body["category"] = category
    if "rule_ids" in given or "rule_ids[]" in given:
        raw = given.get("rule_ids", given.get("rule_ids[]"))
        values = [] if raw is None or raw == "" else raw if isinstance(raw, list) else [raw]
        rules = [parse_id(str(value)) if isinstance(value, str | int) and not isinstance(value, bool) else None
                 for value in values]
        if len(rules) > MAX_STATUSES or any(rule is None for rule in rules):
            raise ApiError(422, "Validation failed: rule_ids must be rule ids")
        if category in (None, "violation"):  # another category names no rules: they are not read
            if any(rule is None or not 1 <= rule <= len(settings.instance_rules) for rule in rules):
                raise ApiError(422, "Validation failed: Rule ids must name the instance's rules")
            body["rule_ids"] = rules
    answer = await services.graph.call("PUT", f"/internal/admin/reports/{record_id(report_id)}", json=body,
                                       token=token)
    return await _report(answer, services, settings.instance_rules)


def _report_change(change: str, what: str) -> None:
    async def route(report_id: str, token: ReportsWriter, services: Services, settings: Settings) -> Response:
        answer = await services.graph.call("POST", f"/internal/admin/reports/{record_id(report_id)}/{change}",
                                           token=token)
        return await _report(answer, services, settings.instance_rules)

    route.__name__ = f"admin_report_{change}"
    route.__doc__ = what
    router.post(f"/api/v1/admin/reports/{{report_id}}/{change}", openapi_extra=doc.BEARER,
                responses=REPORT_ANSWER)(route)


_report_change("assign_to_self", "Take the report on; the Admin::Report.")
_report_change("unassign", "Leave the report to anyone; the Admin::Report.")
_report_change("resolve", "Mark the report resolved (by this moderator), with no action on the account; the "
                          "Admin::Report.")
_report_change("reopen", "Mark a resolved report unresolved again; the Admin::Report.")


# E-mail domain blocks (kicau/email_domain_blocks.py, services/graph/email_blocks.py) ---------------------------

@router.get("/api/v1/admin/email_domain_blocks", openapi_extra={
    "parameters": doc.page_parameters("max_id", "since_id", "min_id"), **doc.BEARER},
    responses={**doc.ok(list[doc.AdminEmailDomainBlock]), **doc.errors(400, 401, 403, 422)})
async def email_domain_blocks(request: Request, token: BlocksReader, services: Services, common: Common) -> Response:
    """The e-mail domains no account may register with, newest first, 100 a page (at most 200), each with its last
    seven days of refused sign-ups."""
    answer = await services.graph.call("GET", "/internal/admin/email_domain_blocks", params=_page(request),
                                       token=token)
    return _paged(request, common, answer)


@router.get("/api/v1/admin/email_domain_blocks/{block_id}", openapi_extra=doc.BEARER, responses=BLOCK_ANSWER)
async def email_domain_block(block_id: str, token: BlocksReader, services: Services) -> Response:
    """One e-mail domain block: the Admin::EmailDomainBlock."""
    return passthrough(await services.graph.call(
        "GET", f"/internal/admin/email_domain_blocks/{record_id(block_id)}", token=token))


@router.post("/api/v1/admin/email_domain_blocks", openapi_extra={**BLOCK_BODY, **doc.BEARER},
             responses={**BLOCK_ANSWER, **doc.errors(400, 401, 403, 413, 415, 422)})
async def block_email_domain(request: Request, token: BlocksWriter, services: Services,
                             settings: Settings) -> Response:
    """Refuse sign-ups with addresses of ``domain`` and of the domains under it, or with ``allow_with_approval``
    hold them for staff's approval; the Admin::EmailDomainBlock. A domain blocked already is a 422."""
    given = await read_params(request, settings.max_body_bytes)
    domain = optional_str(given, "domain")
    if not domain or not domain.strip():
        raise ApiError(422, "Validation failed: Domain can't be blank")
    body = {"domain": domain, "allow_with_approval": bool(optional_flag(given, "allow_with_approval"))}
    return passthrough(await services.graph.call("POST", "/internal/admin/email_domain_blocks", json=body,
                                                 token=token))


@router.delete("/api/v1/admin/email_domain_blocks/{block_id}", openapi_extra=doc.BEARER,
               responses={**doc.ok(dict[str, Any]), **doc.errors(401, 403, 404)})
async def unblock_email_domain(block_id: str, token: BlocksWriter, services: Services) -> Response:
    """Lift an e-mail domain block; an empty object."""
    return passthrough(await services.graph.call(
        "DELETE", f"/internal/admin/email_domain_blocks/{record_id(block_id)}", token=token))


# Canonical e-mail blocks (kicau/canonical_email_blocks.py, services/graph/email_blocks.py) ----------------------

@router.get("/api/v1/admin/canonical_email_blocks", openapi_extra={
    "parameters": doc.page_parameters("max_id", "since_id", "min_id"), **doc.BEARER},
    responses={**doc.ok(list[doc.AdminCanonicalEmailBlock]), **doc.errors(400, 401, 403, 422)})
async def canonical_email_blocks(request: Request, token: AddressBlocksReader, services: Services,
                                 common: Common) -> Response:
    """The addresses no account may register with again (their canonical forms' hashes), newest first, 100 a page
    (at most 200)."""
    answer = await services.graph.call("GET", "/internal/admin/canonical_email_blocks", params=_page(request),
                                       token=token)
    return _paged(request, common, answer)


@router.get("/api/v1/admin/canonical_email_blocks/{block_id}", openapi_extra=doc.BEARER, responses=ADDRESS_ANSWER)
async def canonical_email_block(block_id: str, token: AddressBlocksReader, services: Services) -> Response:
    """One canonical e-mail block: the Admin::CanonicalEmailBlock."""
    return passthrough(await services.graph.call(
        "GET", f"/internal/admin/canonical_email_blocks/{record_id(block_id)}", token=token))


async def _address_params(request: Request, settings: Settings) -> dict[str, str]:
    given = await read_params(request, settings.max_body_bytes)
    found = {name: value for name in ("email", "canonical_email_hash") if (value := optional_str(given, name))}
    if len(found.get("email", "")) > MAX_EMAIL:
        raise ApiError(422, f"Validation failed: email is too long (at most {MAX_EMAIL} characters)")
    if len(found.get("canonical_email_hash", "")) > 64:
        raise ApiError(422, "Validation failed: Canonical email hash must be a SHA-256 in hex")
    return found


@router.post("/api/v1/admin/canonical_email_blocks/test", openapi_extra={**ADDRESS_BODY, **doc.BEARER},
             responses={**doc.ok(list[doc.AdminCanonicalEmailBlock]), **doc.errors(400, 401, 403, 413, 415, 422)})
async def test_canonical_email(request: Request, token: AddressBlocksReader, services: Services,
                               settings: Settings) -> Response:
    """The blocks ``email`` meets (none or one), by its canonical form."""
    return passthrough(await services.graph.call("POST", "/internal/admin/canonical_email_blocks/test",
                                                 json=await _address_params(request, settings), token=token))


@router.post("/api/v1/admin/canonical_email_blocks", openapi_extra={**ADDRESS_BODY, **doc.BEARER},
             responses={**ADDRESS_ANSWER, **doc.errors(400, 401, 403, 413, 415, 422)})
async def block_canonical_email(request: Request, token: AddressBlocksWriter, services: Services,
                                settings: Settings) -> Response:
    """Refuse sign-ups with ``email`` however it is dressed up (dots, ``+`` tags, case), or with the address
    whose canonical form hashes to ``canonical_email_hash``; the Admin::CanonicalEmailBlock."""
    return passthrough(await services.graph.call("POST", "/internal/admin/canonical_email_blocks",
                                                 json=await _address_params(request, settings), token=token))


@router.delete("/api/v1/admin/canonical_email_blocks/{block_id}", openapi_extra=doc.BEARER,
               responses={**doc.ok(dict[str, Any]), **doc.errors(401, 403, 404)})
async def unblock_canonical_email(block_id: str, token: AddressBlocksWriter, services: Services) -> Response:
    """Lift a canonical e-mail block; an empty object."""
    return passthrough(await services.graph.call(
        "DELETE", f"/internal/admin/canonical_email_blocks/{record_id(block_id)}", token=token))


# Helpers ---------------------------------------------------------------------------------------------------------

def _page(request: Request) -> list[tuple[str, Any]]:
    query = request.query_params
    params: list[tuple[str, Any]] = [("limit", page_limit(query.get("limit"), PAGE_DEFAULT, PAGE_MOST))]
    for name in ("max_id", "since_id", "min_id"):
        value = cursor(query.get(name), name)
        if value is not None:
            params.append((name, value))
    return params


def _account_filters(request: Request) -> list[tuple[str, Any]]:
    """``account_id`` and ``target_account_id`` as given (a 400 for what is no id)."""
    params: list[tuple[str, Any]] = []
    for name in ("account_id", "target_account_id"):
        value = request.query_params.get(name)
        if value:
            parsed = parse_id(value)
            if parsed is None:
                raise ApiError(400, f"{name} must be an account id")
            params.append((name, parsed))
    return params


def _paged(request: Request, common: Common, answer: UpstreamResponse) -> Response:
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get("x-kicau-next"),
                       answer.headers.get("x-kicau-prev"))
    return passthrough(answer, {"Link": link} if link else None)


async def _report(answer: UpstreamResponse, services: Services, rules: list[str]) -> Response:
    raise_for_error(answer)
    return JSONResponse(await _complete(answer.json(), services, rules))


async def _complete(report: dict[str, Any], services: Services, rules: list[str]) -> dict[str, Any]:
    """The graph service's report with its statuses (as its reporter sees them) and rules in place of their ids."""
    status_ids = [int(status_id) for status_id in report.pop("status_ids", [])]
    rule_ids = [int(rule_id) for rule_id in report.pop("rule_ids", [])]
    reporter = report.get("account") or {}
    statuses: list[Any] = []
    if status_ids and reporter.get("id"):
        as_reporter = TokenInfo(account_id=int(reporter["id"]), client_id="", scopes=["read"])
        reads = await asyncio.gather(*(
            services.timeline.call("GET", "/internal/statuses", token=as_reporter,
                                   params=[("moderating", "true"),
                                           *(("id", i) for i in status_ids[start:start + STATUSES_A_READ])])
            for start in range(0, len(status_ids), STATUSES_A_READ)))
        for read in reads:
            raise_for_error(read)
            statuses.extend(read.json())
    report["statuses"] = statuses
    report["rules"] = [{"id": str(rule), "text": rules[rule - 1], "hint": ""} for rule in rule_ids
                       if 1 <= rule <= len(rules)]
    return report


# IP blocks (kicau/ip_blocks.py, services/graph/ip_blocks.py) -----------------------------------------------------

@router.get("/api/v1/admin/ip_blocks", openapi_extra={
    "parameters": doc.page_parameters("max_id", "since_id", "min_id"), **doc.BEARER},
    responses={**doc.ok(list[doc.AdminIpBlock]), **doc.errors(400, 401, 403, 422)})
async def ip_blocks(request: Request, token: IpBlocksReader, services: Services, common: Common) -> Response:
    """The addresses and ranges sign-ups, or all requests, are refused from, newest first, 100 a page (at most
    200)."""
    answer = await services.graph.call("GET", "/internal/admin/ip_blocks", params=_page(request), token=token)
    return _paged(request, common, answer)


@router.get("/api/v1/admin/ip_blocks/{block_id}", openapi_extra=doc.BEARER, responses=IP_BLOCK_ANSWER)
async def ip_block(block_id: str, token: IpBlocksReader, services: Services) -> Response:
    """One IP block: the Admin::IpBlock."""
    return passthrough(await services.graph.call("GET", f"/internal/admin/ip_blocks/{record_id(block_id)}",
                                                 token=token))


async def _ip_block_params(request: Request, settings: Settings) -> dict[str, Any]:
    """The fields given (``expires_in`` empty: null, it no longer expires), checked for their kind and length; the
    graph service checks what they say."""
    given = await read_params(request, settings.max_body_bytes)
    found: dict[str, Any] = {}
    for name, longest in (("ip", MAX_IP), ("severity", 40), ("comment", MAX_COMMENT)):
        value = optional_str(given, name)
        if value is not None:
            if len(value) > longest:
                raise ApiError(422, f"Validation failed: {name} is too long (at most {longest} characters)")
            found[name] = value
    raw = given.get("expires_in")
    if raw == "":
        found["expires_in"] = None
    elif raw is not None:
        seconds = raw if isinstance(raw, int) and not isinstance(raw, bool) else \
            int(raw) if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 10 else None
        if seconds is None or not 0 < seconds <= MAX_EXPIRES_IN:
            raise ApiError(422, f"Validation failed: expires_in must be a number of seconds from 1 to "
                                f"{MAX_EXPIRES_IN}")
        found["expires_in"] = seconds
    return found


@router.post("/api/v1/admin/ip_blocks", openapi_extra={**IP_BLOCK_BODY, **doc.BEARER},
             responses={**IP_BLOCK_ANSWER, **doc.errors(400, 401, 403, 413, 415, 422)})
async def block_ip(request: Request, token: IpBlocksWriter, services: Services, settings: Settings) -> Response:
    """Hold sign-ups for staff's approval (``sign_up_requires_approval``), refuse them (``sign_up_block``) or refuse
    every request (``no_access``) from ``ip``, an address or a network in CIDR notation, for ``expires_in`` seconds
    or for good; the Admin::IpBlock. Applied by every gateway within about a second."""
    return passthrough(await services.graph.call("POST", "/internal/admin/ip_blocks",
                                                 json=await _ip_block_params(request, settings), token=token))


@router.put("/api/v1/admin/ip_blocks/{block_id}", openapi_extra={**IP_BLOCK_CHANGE_BODY, **doc.BEARER},
            responses={**IP_BLOCK_ANSWER, **doc.errors(400, 401, 403, 404, 413, 415, 422)})
async def change_ip_block(block_id: str, request: Request, token: IpBlocksWriter, services: Services,
                          settings: Settings) -> Response:
    """Change what is given of an IP block (``expires_in`` empty: it no longer expires); the Admin::IpBlock."""
    return passthrough(await services.graph.call("PUT", f"/internal/admin/ip_blocks/{record_id(block_id)}",
                                                 json=await _ip_block_params(request, settings), token=token))


@router.delete("/api/v1/admin/ip_blocks/{block_id}", openapi_extra=doc.BEARER,
               responses={**doc.ok(dict[str, Any]), **doc.errors(401, 403, 404)})
async def unblock_ip(block_id: str, token: IpBlocksWriter, services: Services) -> Response:
    """Lift an IP block; an empty object."""
    return passthrough(await services.graph.call("DELETE", f"/internal/admin/ip_blocks/{record_id(block_id)}",
                                                 token=token))


# Trends review (kicau/trend_reviews.py; the timeline service holds the trends and the reviews) -----------------------

# Each kind's page sizes (default, most), as its public listing's (services/gateway/routes/accounts.py).
_TREND_PAGES: Final = {"tags": (10, 20), "links": (10, 20), "statuses": (20, 40)}
_TREND_ENTITIES: Final[dict[str, Any]] = {"tags": doc.AdminTag, "links": dict[str, Any],
                                          "statuses": doc.AdminTrendsStatus}


def _trend_routes(kind: str) -> None:
    """Mastodon's ``/api/v1/admin/trends/<kind>`` and its ``approve`` and ``reject`` for one kind of trend."""
    default, most = _TREND_PAGES[kind]
    entity = _TREND_ENTITIES[kind]

    @router.get(f"/api/v1/admin/trends/{kind}", name=f"admin_trending_{kind}", openapi_extra={
        "parameters": [doc.query("limit", doc.LIMIT, f"Page size (clamped to 1..{most}; {default} when absent)"),
                       doc.query("offset", {"type": "string", "pattern": "^[0-9]{0,9}$"}, "How many to skip")],
        **doc.BEARER}, responses={**doc.ok(list[entity]), **doc.errors(400, 401, 403)})  # type: ignore[valid-type]
    async def listing(request: Request, token: AdminReader, services: Services, common: Common,
                      limit: Annotated[str | None, Hidden] = None,
                      offset: Annotated[str | None, Hidden] = None) -> Response:
        """What trends now, reviewed by staff or not, most first, each with ``requires_review`` (no one has) and
        ``trendable`` (whether it trends for everyone); paged by ``offset``."""
        return await trends_page(f"/internal/admin/trends/{kind}", request, services, token, common,
                                 page_limit(limit, default, most), offset_param(offset))

    for verdict in ("approve", "reject"):
        _review_route(kind, verdict, entity)


def _review_route(kind: str, verdict: str, entity: Any) -> None:
    @router.post(f"/api/v1/admin/trends/{kind}/{{item_id}}/{verdict}", name=f"admin_{verdict}_trending_{kind}",
                 openapi_extra=doc.BEARER, responses={**doc.ok(entity), **doc.errors(401, 403, 404)})
    async def review(item_id: str, token: AdminWriter, services: Services) -> Response:
        """Let it trend (``approve``) or keep it from trending (``reject``), whatever its use; the item as the
        listing shows it. A hashtag's id is its name, a status's its id, a page's the ``id`` the listing gives."""
        return passthrough(await services.timeline.call(
            "POST", f"/internal/admin/trends/{kind}/{quote(item_id, safe='')}/{verdict}", token=token))


for _kind in _TREND_PAGES:
    _trend_routes(_kind)


# Measures (kicau/instance_measures.py, services/graph/measures.py) --------------------------------------------------

_PERIOD_END: Final = {"type": "string", "maxLength": 40,
                      "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9:.]+([Zz]|[+-][0-9:]+)?)?$"}
MEASURES_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["keys", "start_at", "end_at"],
    "properties": {
        "keys": {"type": "array", "items": {"type": "string", "enum": list(MEASURES)}, "maxItems": 20},
        "start_at": _PERIOD_END, "end_at": _PERIOD_END,
        **{key: {"type": "object", "properties": {"id": doc.text(max_length=100)}} for key in TAG_MEASURES},
    }}}}}}


def _keys(given: dict[str, Any]) -> list[str]:
    keys = given.get("keys", [])
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or len(keys) > 20:
        raise ApiError(422, "Validation failed: keys must be a list of at most 20 names")
    return keys


def _period(given: dict[str, Any]) -> dict[str, Any]:
    for name in ("start_at", "end_at"):
        if given.get(name) is not None and not isinstance(given[name], str):
            raise ApiError(422, f"Validation failed: {name} must be a date or a time in ISO 8601")
    return {"start_at": given.get("start_at"), "end_at": given.get("end_at")}


@router.post("/api/v1/admin/measures", openapi_extra={**MEASURES_BODY, **doc.BEARER},
             responses={**doc.ok(list[dict[str, Any]], "Admin::Measure each"), **doc.errors(400, 401, 403, 404,
                                                                                           413, 415, 422)})
async def measures(request: Request, token: AdminReader, services: Services, settings: Settings) -> Response:
    """Figures a day over a period of whole days (``start_at`` to ``end_at``, dates or times in ISO 8601): the
    ``keys`` asked for among ``active_users``, ``new_users``, ``interactions``, ``opened_reports``,
    ``resolved_reports``, and ``tag_accounts``, ``tag_uses``, ``tag_servers`` with ``{"id": <hashtag>}``; each with
    its total and that of the period before."""
    given = await read_params(request, settings.max_body_bytes)
    keys = _keys(given)
    tags: dict[str, str] = {}
    for key in TAG_MEASURES:
        tag = nested(given, key, "id")
        if tag is not None and key in keys:
            if not isinstance(tag, str | int) or isinstance(tag, bool) or len(str(tag)) > 100:
                raise ApiError(422, f"Validation failed: {key}[id] must be a hashtag's name")
            tags[key] = str(tag)
    body = {"keys": keys, **_period(given), "tags": tags}
    return passthrough(await services.graph.call("POST", "/internal/admin/measures", json=body, token=token))


DIMENSIONS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["keys", "start_at", "end_at"],
    "properties": {
        "keys": {"type": "array", "items": {"type": "string", "enum": list(DIMENSIONS)}, "maxItems": 20},
        "start_at": _PERIOD_END, "end_at": _PERIOD_END, "limit": {"type": "integer", "minimum": 1, "maximum": 100},
    }}}}}}


@router.post("/api/v1/admin/dimensions", openapi_extra={**DIMENSIONS_BODY, **doc.BEARER},
             responses={**doc.ok(list[dict[str, Any]], "Admin::Dimension each"), **doc.errors(400, 401, 403, 413,
                                                                                               415, 422)})
async def dimensions(request: Request, token: AdminReader, services: Services, settings: Settings) -> Response:
    """Breakdowns over a period (``start_at`` to ``end_at``): the ``keys`` asked for among ``languages`` (the
    statuses posted in each, ``limit`` of them, 100 at most), ``software_versions`` and ``space_usage``."""
    given = await read_params(request, settings.max_body_bytes)
    body = {"keys": _keys(given), **_period(given)}
    raw = given.get("limit")
    if raw is not None and raw != "":
        limit = raw if isinstance(raw, int) and not isinstance(raw, bool) else \
            int(raw) if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 9 else None
        if limit is None or limit < 1:
            raise ApiError(422, "Validation failed: limit must be a positive number")
        body["limit"] = min(limit, 100)
    return passthrough(await services.graph.call("POST", "/internal/admin/dimensions", json=body, token=token))


# The audit log (kicau/audit_log.py, services/graph/admin.py) --------------------------------------------------------

AUDIT_PAGE = {"parameters": [
    *doc.page_parameters("max_id", "since_id", "min_id"),
    doc.query("action_type", doc.text(max_length=100), "Only this kind of action (Mastodon's, e.g. suspend_account)"),
    doc.query("account_id", doc.CURSOR, "Only what this account did"),
    doc.query("target_account_id", doc.CURSOR, "Only what concerned this account"),
]}


@router.get("/api/v1/admin/audit_logs", openapi_extra={**AUDIT_PAGE, **doc.BEARER},
            responses={**doc.ok(list[dict[str, Any]], "Admin::ActionLog each"), **doc.errors(400, 401, 403, 422)})
async def audit_logs(request: Request, token: AdminReader, services: Services, common: Common) -> Response:
    """What staff did through the admin API, newest first, 100 a page (at most 200): who acted (``account``), the
    action (``action_type``), what it concerned (``target_type``, ``target_id``, ``target_account``, a block as it
    was)."""
    params = [*_page(request), *_account_filters(request)]
    action_type = request.query_params.get("action_type")
    if action_type:
        if len(action_type) > 100:
            raise ApiError(400, "action_type is too long")
        params.append(("action_type", reject_nul("action_type", action_type)))
    answer = await services.graph.call("GET", "/internal/admin/audit_logs", params=params, token=token)
    return _paged(request, common, answer)
