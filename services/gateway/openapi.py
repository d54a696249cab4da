"""What the gateway's OpenAPI document says about the routes that read their parameters by hand.

Mastodon clients send the same parameters as forms (Mastodon.py) or JSON (toot), so the routes read bodies and
most query parameters themselves (params.py) instead of declaring them to FastAPI, which would also change how
bad values are answered. The schema fragments here describe those parameters exactly as the routes accept
them, for the routes' ``openapi_extra``; the entity models describe answers (for ``responses``), and
``errors`` the ``{"error": "..."}`` body every failure carries. schemathesis checks the gateway against this
document (tests/gateway/test_schemathesis.py), so it must stay true, not merely plausible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict

from kicau import hashtags
from kicau.blocks_and_mutes import MAX_MUTE_SECONDS
from kicau.entities import MAX_DISPLAY_NAME, MAX_NOTE, MAX_SIGN_UP_REASON
from kicau.filters import ACTIONS as FILTER_ACTIONS
from kicau.filters import CONTEXTS as FILTER_CONTEXTS
from kicau.filters import MAX_EXPIRES_IN as FILTER_MAX_EXPIRES_IN
from kicau.filters import MAX_KEYWORD as FILTER_MAX_KEYWORD
from kicau.filters import MAX_RULES as FILTER_MAX_RULES
from kicau.filters import MAX_TITLE as FILTER_MAX_TITLE
from kicau.follow_options import MAX_LANGUAGES
from kicau.lists import MAX_TITLE, REPLIES_POLICIES
from kicau.staff import ADMIN_RESOURCES
from kicau.web import FALSE_WORDS, TRUE_WORDS

JSONSchema = dict[str, Any]


class Error(BaseModel):
    """Every 4xx and 5xx answer: Mastodon's error entity."""

    error: str


class _Entity(BaseModel):
    model_config = ConfigDict(extra="allow")


class Account(_Entity):
    id: str
    username: str
    acct: str
    display_name: str
    locked: bool
    bot: bool
    created_at: str
    note: str
    url: str
    avatar: str
    header: str
    followers_count: int
    following_count: int
    statuses_count: int
    last_status_at: str | None
    emojis: list[Any]
    fields: list[Any]
    # Present, and true, on a suspended account's only (its profile then shows blank, as Mastodon's).
    suspended: bool | None = None
    # Present, and true, on a limited (silenced) account's only.
    limited: bool | None = None
    # Present, and true, on the account of one staff marked sensitive only (a key of Kicau's).
    sensitized: bool | None = None


class Status(_Entity):
    id: str
    uri: str
    url: str | None
    created_at: str
    account: Account
    content: str
    visibility: str
    sensitive: bool
    spoiler_text: str
    media_attachments: list[Any]
    mentions: list[Any]
    tags: list[Any]
    emojis: list[Any]
    reblogs_count: int
    favourites_count: int
    replies_count: int
    in_reply_to_id: str | None
    in_reply_to_account_id: str | None
    reblog: Any | None
    language: str | None


class DeletedStatus(Status):
    text: str


class StatusEdit(_Entity):
    """One version of a status (GET /api/v1/statuses/:id/history)."""

    content: str
    spoiler_text: str
    sensitive: bool
    created_at: str
    account: Account
    media_attachments: list[Any]
    emojis: list[Any]


class ScheduledParams(_Entity):
    text: str
    visibility: str
    sensitive: bool
    spoiler_text: str | None
    language: str | None
    in_reply_to_id: str | None


class ScheduledStatus(_Entity):
    """A status kept to be posted later (POST /api/v1/statuses with ``scheduled_at``; services/post/scheduled.py)."""

    id: str
    scheduled_at: str
    params: ScheduledParams
    media_attachments: list[Any]


class StatusSource(_Entity):
    id: str
    text: str
    spoiler_text: str


class MutedAccount(Account):
    mute_expires_at: str | None


class Relationship(_Entity):
    id: str
    following: bool
    followed_by: bool
    blocking: bool
    muting: bool
    requested: bool


class Application(_Entity):
    id: str
    name: str
    scopes: list[str]
    redirect_uri: str


class CredentialApplication(Application):
    client_id: str
    client_secret: str


class Announcement(_Entity):
    id: str
    content: str
    read: bool
    reactions: list[dict[str, Any]]


class MediaAttachment(_Entity):
    id: str
    type: str
    url: str | None
    preview_url: str | None
    meta: dict[str, Any] | None
    description: str | None
    blurhash: str | None


class Poll(_Entity):
    id: str
    expired: bool
    multiple: bool
    votes_count: int
    options: list[dict[str, Any]]


class Token(_Entity):
    access_token: str
    token_type: str
    scope: str
    created_at: int


class AccountWarning(_Entity):
    """What an account is told of a moderation action on it (kicau/account_warnings.py)."""

    id: str
    action: str
    text: str
    status_ids: list[str] | None
    target_account: Account
    appeal: Any | None
    created_at: str


class NotificationGroup(_Entity):
    group_key: str
    notifications_count: int
    type: str
    most_recent_notification_id: str
    page_min_id: str
    page_max_id: str
    latest_page_notification_at: str
    sample_account_ids: list[str]
    status_id: str | None = None
    report: Report | None = None  # an ``admin.report``'s
    moderation_warning: AccountWarning | None = None  # a ``moderation_warning``'s


class GroupedNotifications(_Entity):
    """GET /api/v2/notifications (kicau/notification_groups.py)."""

    accounts: list[Account]
    statuses: list[Status]
    notification_groups: list[NotificationGroup]


class Suggestion(_Entity):
    """GET /api/v2/suggestions (kicau/follow_suggestions.py)."""

    source: str
    sources: list[str]
    account: Account


class FamiliarFollowers(_Entity):
    id: str
    accounts: list[Account]


class Context(_Entity):
    ancestors: list[Status]
    descendants: list[Status]


class Notification(_Entity):
    id: str
    type: str
    created_at: str
    group_key: str
    account: Account
    status: Status | None = None
    report: Report | None = None  # an ``admin.report``'s
    moderation_warning: AccountWarning | None = None  # a ``moderation_warning``'s


class PolicySummary(_Entity):
    pending_requests_count: int
    pending_notifications_count: int


class NotificationPolicy(_Entity):
    """GET /api/v2/notifications/policy (kicau/notification_policies.py)."""

    for_not_following: str
    for_not_followers: str
    for_new_accounts: str
    for_private_mentions: str
    for_limited_accounts: str
    summary: PolicySummary


class NotificationPolicyV1(_Entity):
    """GET /api/v1/notifications/policy (Mastodon 4.2's booleans)."""

    filter_not_following: bool
    filter_not_followers: bool
    filter_new_accounts: bool
    filter_private_mentions: bool
    summary: PolicySummary


class NotificationRequest(_Entity):
    id: str
    created_at: str
    updated_at: str
    notifications_count: str
    account: Account
    last_status: Status | None = None


class Report(_Entity):
    """POST /api/v1/reports (kicau/reports.py)."""

    id: str
    action_taken: bool
    category: str
    comment: str
    forwarded: bool
    created_at: str
    target_account: Account
    status_ids: list[str] | None = None
    rule_ids: list[str] | None = None


class Role(_Entity):
    id: str
    name: str
    color: str
    permissions: str
    highlighted: bool


class AdminAccount(_Entity):
    """GET /api/v1/admin/accounts (services/graph/admin.py)."""

    id: str
    username: str
    domain: str | None
    created_at: str
    email: str
    ip: str | None
    ips: list[Any]
    locale: str
    role: Role
    confirmed: bool
    approved: bool
    invite_request: str | None
    disabled: bool
    sensitized: bool
    silenced: bool
    suspended: bool
    account: Account


class Rule(_Entity):
    id: str
    text: str
    hint: str


class AdminEmailDomainBlock(_Entity):
    """GET /api/v1/admin/email_domain_blocks (kicau/email_domain_blocks.py)."""

    id: str
    domain: str
    created_at: str
    history: list[dict[str, str]]
    allow_with_approval: bool


class AdminCanonicalEmailBlock(_Entity):
    """GET /api/v1/admin/canonical_email_blocks (kicau/canonical_email_blocks.py)."""

    id: str
    canonical_email_hash: str


class AdminIpBlock(_Entity):
    """GET /api/v1/admin/ip_blocks (kicau/ip_blocks.py)."""

    id: str
    ip: str
    severity: str
    comment: str
    created_at: str
    expires_at: str | None


class AdminReport(_Entity):
    """GET /api/v1/admin/reports (services/graph/admin.py, services/gateway/routes/admin.py)."""

    id: str
    action_taken: bool
    action_taken_at: str | None
    category: str
    comment: str
    forwarded: bool
    created_at: str
    updated_at: str
    account: AdminAccount
    target_account: AdminAccount
    assigned_account: AdminAccount | None
    action_taken_by_account: AdminAccount | None
    statuses: list[Status]
    rules: list[Rule]


class Conversation(_Entity):
    id: str
    unread: bool
    accounts: list[Account]
    last_status: Status | None = None


class FilterKeyword(_Entity):
    id: str
    keyword: str
    whole_word: bool


class FilterStatus(_Entity):
    id: str
    status_id: str


class Filter(_Entity):
    id: str
    title: str
    context: list[str]
    expires_at: str | None
    filter_action: str
    keywords: list[FilterKeyword]
    statuses: list[FilterStatus]


class FilterV1(_Entity):
    id: str
    phrase: str
    context: list[str]
    whole_word: bool
    expires_at: str | None
    irreversible: bool


class Marker(_Entity):
    last_read_id: str
    version: int
    updated_at: str


class TagHistory(_Entity):
    day: str
    uses: str
    accounts: str


class Tag(_Entity):
    name: str
    url: str
    history: list[TagHistory]
    following: bool | None = None
    featuring: bool | None = None


class AdminTag(Tag):
    """GET /api/v1/admin/trends/tags (kicau/trend_reviews.py): the id is the name in normal form."""

    id: str
    trendable: bool
    usable: bool
    requires_review: bool
    listable: bool


class AdminTrendsStatus(Status):
    """GET /api/v1/admin/trends/statuses (kicau/trend_reviews.py)."""

    requires_review: bool
    trendable: bool


class FeaturedTag(_Entity):
    id: str
    name: str
    url: str
    statuses_count: str
    last_status_at: str | None


class List(_Entity):
    id: str
    title: str
    replies_policy: str
    exclusive: bool


class SearchResults(_Entity):
    accounts: list[Account]
    statuses: list[Status]
    hashtags: list[Tag]


_REASONS = {
    400: "Malformed request (body that is not JSON, a cursor that is not an id, a grant that does not match)",
    401: "Missing, invalid or revoked access token; unknown client",
    403: "The token lacks the scope, or the action is not allowed",
    404: "No such record (an id that is not one is no record either)",
    409: "Another request changed the record at the same moment; try again",
    413: "Request body larger than the gateway accepts",
    415: "Body that is neither a form nor JSON",
    422: "Validation failed",
    429: "Rate limit exceeded (see the X-RateLimit-* headers)",
    503: "A dependency is unavailable; retry",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for the failures a route can answer; 422, 429 and 503 can happen to any of them
    (and FastAPI would otherwise document its own 422 body, which the gateway never sends)."""
    return {code: {"model": Error, "description": _REASONS[code]} for code in sorted({*codes, 422, 429, 503})}


def ok(model: type[BaseModel] | Any, description: str = "Success") -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model, "description": description}}


# Parameter and body schemas, exactly as the routes and the services behind them accept values. --------------

# A record id: any path segment is accepted; what is not a record's id is a 404 like any missing record.
# Cursors: Mastodon snowflakes (decimal 63-bit integers); anything else is a 400.
# An empty value means "not given", as in Mastodon.
_EMPTY: JSONSchema = {"type": "string", "maxLength": 0}
CURSOR: JSONSchema = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": (1 << 63) - 1}, _EMPTY]}
# Page sizes: out-of-range numbers are clamped, as Mastodon does; what is not an integer is a 400.
LIMIT: JSONSchema = {"anyOf": [{"type": "integer"}, _EMPTY]}
NO_NUL = "^[^\\u0000]*$"
# Whitespace as Python's str.split() and str.strip() see it (the services use them), spelled out: the \\s of
# ECMA regexes (the schema's dialect) differs (it lacks U+001C..U+001F and U+0085, and has U+FEFF).
WS = "\\t\\n\\u000b\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"


def query(name: str, schema: JSONSchema, description: str) -> JSONSchema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def page_parameters(*cursors: str) -> list[JSONSchema]:
    return [
        query("limit", LIMIT, "Page size (clamped to the route's maximum)"),
        *(query(c, CURSOR, f"Pagination cursor ({c})") for c in cursors),
    ]


def body(schema: JSONSchema, *, required: bool = True) -> JSONSchema:
    """A request body accepted both as JSON (toot) and as a form (Mastodon.py), which has no null."""
    content = {"application/json": {"schema": schema},
               "application/x-www-form-urlencoded": {"schema": _without_null(schema)}}
    return {"requestBody": {"required": required, "content": content}}


def _without_null(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_without_null(s) for s in schema if s != {"type": "null"}]
    if not isinstance(schema, dict):
        return schema
    result = {k: _without_null(v) for k, v in schema.items()}
    if isinstance(result.get("anyOf"), list) and len(result["anyOf"]) == 1:
        only = result.pop("anyOf")[0]
        result = {**only, **result}
    return result


def text(*, min_length: int = 0, max_length: int | None = None, blank: bool = True) -> JSONSchema:
    """A string without NUL (refused everywhere); ``blank=False`` also needs a character that is not a space."""
    pattern = NO_NUL if blank else f"^[^\\u0000]*[^{WS}\\u0000][^\\u0000]*$"
    schema: JSONSchema = {"type": "string", "pattern": pattern, "minLength": min_length}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def _any_case(*words: str) -> str:
    return "|".join("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in w) for w in words)


# Booleans as pydantic reads them (lax): JSON true/false or 1/0, and the words forms send (Mastodon.py: 1/0).
BOOLEAN: JSONSchema = {"anyOf": [
    {"type": "boolean"}, {"enum": [0, 1]},
    {"type": "string", "pattern": f"^({_any_case(*TRUE_WORDS, *FALSE_WORDS)})$"},
]}
# A flag only false is accepted for (a true one is a 422: what it asks for Kicau does not do).
FALSE: JSONSchema = {"anyOf": [
    {"enum": [False, 0]}, {"type": "string", "pattern": f"^({_any_case(*FALSE_WORDS)})$"},
]}
TRUE: JSONSchema = {"anyOf": [
    {"enum": [True, 1]}, {"type": "string", "pattern": f"^({_any_case(*TRUE_WORDS)})$"},
]}
# Scopes, space- or plus-separated (lists too, as scopes[]); a scope is known by what precedes its colon.
_SCOPE = (f"((read|write|follow|push|profile)(:[^{WS}+\\u0000]*)?|admin:(read|write)"
          f"(:({'|'.join(ADMIN_RESOURCES)}))?)")
_SCOPE_LIST = f"^[{WS}+]*({_SCOPE}([{WS}+]+{_SCOPE})*)?[{WS}+]*$"
SCOPES: JSONSchema = {"anyOf": [
    {"type": "string", "pattern": _SCOPE_LIST},
    {"type": "array", "items": {"type": "string", "pattern": _SCOPE_LIST}},
]}
STRING_OR_LIST: JSONSchema = {"anyOf": [
    {"type": "string", "pattern": "^[^\\u0000]*$"},
    {"type": "array", "items": {"type": "string", "pattern": "^[^\\u0000]*$"}},
]}

# Any JSON without NUL in a string or a key: what a route accepts (and ignores) for parameters it does not read.
CLEAN_REF: JSONSchema = {"$ref": "#/components/schemas/Clean"}
CLEAN: JSONSchema = {"anyOf": [
    {"type": ["null", "boolean", "number"]},
    {"type": "string", "pattern": NO_NUL},
    {"type": "array", "items": CLEAN_REF},
    {"type": "object", "propertyNames": {"pattern": NO_NUL}, "additionalProperties": CLEAN_REF},
]}


def nullable(schema: JSONSchema) -> JSONSchema:
    """An optional parameter that JSON may also send as null (meaning: not given)."""
    return {"anyOf": [schema, {"type": "null"}]}


def params(properties: dict[str, JSONSchema], *required: str) -> JSONSchema:
    """An object of named parameters; others are ignored, as long as they carry no NUL."""
    return {"type": "object", "required": list(required), "properties": properties,
            "propertyNames": {"pattern": NO_NUL}, "additionalProperties": CLEAN_REF}


QUOTE_POLICY: JSONSchema = {"type": "string", "enum": ["public", "followers", "nobody"]}
STATUS_BODY = body(params({
    # Text and spoiler together may hold 500 characters (Mastodon's rule: both count).
    "status": text(min_length=1, max_length=500, blank=False),
    "spoiler_text": nullable(text(max_length=500)),
    "visibility": nullable({"type": "string", "enum": ["public", "unlisted", "private", "direct"]}),
    "sensitive": nullable(BOOLEAN),
    # Up to 16 characters: ASCII letters and digits, with hyphens between or around them.
    "language": nullable({"type": "string", "maxLength": 16, "pattern": "^$|^(-*[A-Za-z0-9])+-*$"}),
    # An existing status (anything that is not an id is a 404; the id of no status is a 422).
    "in_reply_to_id": nullable({"type": ["string", "integer"]}),
    # ISO 8601, at least five minutes ahead: the status is kept and posted then (a ScheduledStatus is answered);
    # empty (a form's blank field): posted now, as on Mastodon.
    "scheduled_at": nullable({"anyOf": [{"type": "string", "format": "date-time"},
                                        {"type": "string", "maxLength": 0}]}),
    # A status to quote (kicau/quotes.py; one that does not exist, or may not be quoted, is a 422) and who may
    # quote this one.
    "quoted_status_id": nullable({"type": ["string", "integer"]}),
    "quote_approval_policy": nullable(QUOTE_POLICY),
}, "status"))
# A vote (kicau/polls.py): the indices of the options chosen, as strings (a form) or numbers (JSON).
VOTE_BODY = body(params({"choices": {"anyOf": [
    {"type": "string", "pattern": "^[0-9]{1,2}$"}, {"type": "integer", "minimum": 0, "maximum": 99},
    {"type": "array", "minItems": 1, "maxItems": 4,
     "items": {"anyOf": [{"type": "string", "pattern": "^[0-9]{1,2}$"}, {"type": "integer", "minimum": 0,
                                                                          "maximum": 99}]}}]}}, "choices"))
# Moving a scheduled status (services/post/scheduled.py): its new time.
RESCHEDULE_BODY = body(params({"scheduled_at": {"type": "string", "format": "date-time"}}, "scheduled_at"))
# An edit's (services/post/edits.py): the text required, the rest optional (the language kept unless given).
STATUS_EDIT_BODY = body(params({
    "status": text(min_length=1, max_length=500, blank=False),
    "spoiler_text": nullable(text(max_length=500)),
    "sensitive": nullable(BOOLEAN),
    "language": nullable({"type": "string", "maxLength": 16, "pattern": "^$|^(-*[A-Za-z0-9])+-*$"}),
    "quote_approval_policy": nullable(QUOTE_POLICY),
}, "status"))
# Who may quote a status (PUT /api/v1/statuses/:id/interaction_policy).
INTERACTION_POLICY_BODY = body(params({"quote_approval_policy": QUOTE_POLICY}, "quote_approval_policy"))
# Whom a reblog is shown to (kicau/reblogs.py: a followers-only status's reblog stays followers-only).
# A hashtag's name, with or without its '#' (kicau/hashtags.py): anything else is a 422.
FEATURE_BODY = body(params({"name": {"type": "string", "maxLength": hashtags.MAX_NAME + 1,
                                     "pattern": f"^#?{hashtags.NAME.pattern}$"}}, "name"))
REBLOG_BODY = body(params({
    "visibility": nullable({"type": "string", "enum": ["public", "unlisted", "private"]}),
}), required=False)
# A mute: whether it hides notifications too, and for how many seconds (0: until unmuted; at most a year).
MUTE_BODY = body(params({
    "notifications": nullable(BOOLEAN),
    "duration": nullable({"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_MUTE_SECONDS},
                                    {"type": "string", "pattern": "^[0-9]{1,7}$"}]}),
}), required=False)
# A follow's options (kicau/follow_options.py): its reblogs shown, notifications of its statuses, its languages.
LANGUAGE = {"type": "string", "maxLength": 16, "pattern": "^(-*[A-Za-z0-9])+-*$"}
FOLLOW_BODY = body(params({
    "reblogs": nullable(BOOLEAN),
    "notify": nullable(BOOLEAN),
    "languages": nullable({"anyOf": [LANGUAGE, {"type": "array", "items": LANGUAGE, "maxItems": MAX_LANGUAGES}]}),
}), required=False)
# A list's title and settings (kicau/lists.py): the title required to make one, each optional to change one.
_LIST_FIELDS: dict[str, JSONSchema] = {
    "title": text(min_length=1, max_length=MAX_TITLE, blank=False),
    "replies_policy": nullable({"anyOf": [{"type": "string", "enum": list(REPLIES_POLICIES)}, _EMPTY]}),
    "exclusive": nullable(BOOLEAN),
}
LIST_BODY = body(params(_LIST_FIELDS, "title"))
LIST_CHANGE_BODY = body(params({**_LIST_FIELDS, "title": nullable(_LIST_FIELDS["title"])}), required=False)
# A filter (kicau/filters.py), documented as JSON (what Mastodon.py and the web client send; a form's keywords are
# Rails' indexed keys, keywords_attributes[0][keyword], which a schema of the form cannot name).
def json_body(schema: JSONSchema, *, required: bool = True) -> JSONSchema:
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


_CONTEXT: JSONSchema = {"type": "string", "enum": list(FILTER_CONTEXTS)}
_KEYWORD_FIELDS: dict[str, JSONSchema] = {
    "keyword": text(min_length=1, max_length=FILTER_MAX_KEYWORD, blank=False),
    "whole_word": nullable(BOOLEAN),
}
_FILTER_FIELDS: dict[str, JSONSchema] = {
    "title": text(min_length=1, max_length=FILTER_MAX_TITLE, blank=False),
    "context": {"anyOf": [_CONTEXT, {"type": "array", "items": _CONTEXT, "minItems": 1}]},
    "filter_action": nullable({"type": "string", "enum": list(FILTER_ACTIONS)}),
    "expires_in": nullable({"anyOf": [{"type": "integer", "minimum": 1, "maximum": FILTER_MAX_EXPIRES_IN},
                                      {"type": "string", "pattern": "^[1-9][0-9]{0,7}$"}, {"enum": [""]}]}),
    "keywords_attributes": nullable({"type": "array", "maxItems": FILTER_MAX_RULES, "items": {
        "type": "object", "required": ["keyword"], "properties": {**_KEYWORD_FIELDS, "_destroy": nullable(BOOLEAN)},
        "additionalProperties": CLEAN_REF}}),
}
# Changing a filter, its keywords are named by ``id`` (their own, else a 404) or made without one.
_KEYWORD_CHANGE: JSONSchema = {"type": "object", "properties": {
    "id": nullable({"type": "string", "pattern": "^([0-9]{1,19})?$"}), "keyword": nullable(_KEYWORD_FIELDS["keyword"]),
    "whole_word": _KEYWORD_FIELDS["whole_word"], "_destroy": nullable(BOOLEAN)}, "additionalProperties": CLEAN_REF}
FILTER_BODY = json_body(params(_FILTER_FIELDS, "title", "context"))
FILTER_CHANGE_BODY = json_body(params({
    **{name: nullable(schema) for name, schema in _FILTER_FIELDS.items() if name != "keywords_attributes"},
    "keywords_attributes": nullable({"type": "array", "maxItems": FILTER_MAX_RULES, "items": _KEYWORD_CHANGE}),
}), required=False)
_FILTER_V1_FIELDS: dict[str, JSONSchema] = {
    "phrase": _KEYWORD_FIELDS["keyword"], "context": _FILTER_FIELDS["context"],
    "irreversible": nullable(BOOLEAN), "whole_word": nullable(BOOLEAN), "expires_in": _FILTER_FIELDS["expires_in"],
}
FILTER_V1_BODY = body(params(_FILTER_V1_FIELDS, "phrase", "context"))
FILTER_V1_CHANGE_BODY = body(params({name: nullable(schema) for name, schema in _FILTER_V1_FIELDS.items()}),
                             required=False)
KEYWORD_BODY = body(params(_KEYWORD_FIELDS, "keyword"))
KEYWORD_CHANGE_BODY = body(params({"keyword": nullable(_KEYWORD_FIELDS["keyword"]),
                                   "whole_word": _KEYWORD_FIELDS["whole_word"]}), required=False)
FILTER_STATUS_BODY = body(params({"status_id": {"anyOf": [{"type": "string", "pattern": "^[0-9]{1,19}$"},
                                                           {"type": "integer", "minimum": 0}]}}, "status_id"))
# The accounts to add to a list or take out of it: one id, or up to 100 (what is not an account's id is a 404), as
# strings or, in JSON, numbers.
_ACCOUNT_ID: JSONSchema = {"anyOf": [{"type": "string", "pattern": "^[0-9]+$"}, {"type": "integer", "minimum": 0}]}
MEMBERS_BODY = body(params({"account_ids": {"anyOf": [
    _ACCOUNT_ID, {"type": "array", "items": _ACCOUNT_ID, "minItems": 1, "maxItems": 100}]}}, "account_ids"))
# Mastodon's unfollow takes no parameters: any are ignored.
UNFOLLOW_BODY = body(params({}), required=False)
APP_BODY = body(params({
    "client_name": text(),
    "redirect_uris": STRING_OR_LIST,
    "scopes": nullable(SCOPES),
    "website": nullable(text()),
}, "client_name"))
TOKEN_BODY = body(params({
    "grant_type": {"type": "string", "enum": ["password", "client_credentials", "authorization_code"]},
    "client_id": text(),
    "client_secret": text(),
    "username": nullable(text()),
    "password": nullable(text()),
    "scope": nullable(SCOPES),
    "code": nullable(text()),
    "redirect_uri": nullable(text()),
    "code_verifier": nullable(text()),
}, "grant_type", "client_id", "client_secret"))
# The form of GET /oauth/authorize, sent back approved or denied (routes/authorize.py).
AUTHORIZE_BODY = {"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": _without_null(params({
        "response_type": text(), "client_id": text(), "redirect_uri": text(), "scope": SCOPES, "state": text(),
        "code_challenge": text(), "code_challenge_method": text(), "login": text(), "password": text(),
        "decision": {"type": "string", "enum": ["approve", "deny"]},
    }, "response_type", "client_id"))}}}}
REVOKE_BODY = body(params({
    "client_id": text(), "client_secret": text(), "token": text(min_length=1),
}, "client_id", "client_secret", "token"))
_MAILCHAR = f"[^@{WS}\\u0000]"
REGISTRATION_BODY = body(params({
    "username": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,30}$"},
    "email": {"type": "string", "pattern": f"^{_MAILCHAR}{{1,64}}@{_MAILCHAR}{{1,255}}\\.{_MAILCHAR}{{1,63}}$"},
    "password": {"type": "string", "pattern": NO_NUL, "minLength": 8, "maxLength": 72},
    "agreement": TRUE,
    "locale": nullable(text()),
    "reason": nullable(text(max_length=MAX_SIGN_UP_REASON)),
}, "username", "email", "password", "agreement"))
# update_credentials: what Kicau keeps; the rest of Mastodon's fields are checked by the route (422 unless unchanged).
PROFILE_BODY = body(params({
    "display_name": nullable(text(max_length=MAX_DISPLAY_NAME)),
    "note": nullable(text(max_length=MAX_NOTE)),
    "bot": nullable(BOOLEAN),
    "locked": nullable(BOOLEAN),
    # Posting defaults (kicau/posting_defaults.py).
    "source[privacy]": nullable({"type": "string", "enum": ["public", "unlisted", "private"]}),
    "source[sensitive]": nullable(BOOLEAN),
    "source[language]": nullable(text(max_length=2)),
    "source[quote_policy]": nullable({"type": "string", "enum": ["public", "followers", "nobody"]}),
}), required=False)
# Markers (Mastodon's shape): `home[last_read_id]=<id>` in a form (Mastodon.py), {"home": {"last_read_id": <id>}}
# in JSON; `notifications` likewise; other names are ignored. What is not an id is a 422.
MARKERS_BODY = body(params({}), required=False)
BEARER: JSONSchema = {"security": [{"bearer": []}]}
OPTIONAL_BEARER: JSONSchema = {"security": [{}, {"bearer": []}]}


def install(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's document plus the bearer-token security scheme the routes refer to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {})["Clean"] = CLEAN
            components["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An OAuth access token from POST /oauth/token or POST /api/v1/accounts"},
            }
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi
