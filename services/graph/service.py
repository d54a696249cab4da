"""Accounts, OAuth and the follow graph: the domain rules, one function per verb.

Uniqueness (usernames, emails, follow edges) is decided by Cassandra lightweight transactions so two racing
requests cannot both win. A follow that is retried after a partial failure re-applies the remaining steps
and republishes its event: every step is idempotent, so retries converge instead of double counting.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from kicau import (
    directory,
    email_domain_blocks,
    featured_tags,
    follow_suggestions,
    follower_lists,
    hashtags,
    instance_usage,
    keys,
    media,
    posting_defaults,
    resp,
    tag_history,
    tokens,
    web_push,
)
from kicau.account_cards import AccountCards, discoverable, listed
from kicau.account_ips import AccountIps
from kicau.account_names import AccountNames, DisplayNameWords, name_words, names_match
from kicau.account_notes import MAX_NOTE_LENGTH, AccountNoteStore
from kicau.account_standing import AccountStanding
from kicau.account_warnings import WarningStore
from kicau.announcements import MAX_REACTIONS, Announcement, AnnouncementStore, is_emoji
from kicau.announcements import entity as announcement_entity
from kicau.announcements import tell as tell_announcements
from kicau.audit_log import ActionLog, AuditLogStore
from kicau.blocks_and_mutes import BLOCK, MUTE, BlocksAndMutes, Kind, copy_changes
from kicau.canonical_email_blocks import CanonicalEmailBlockStore
from kicau.crash_points import crash_point
from kicau.directory import Directory
from kicau.email_domain_blocks import EmailDomainBlockStore
from kicau.entities import (
    MAX_DISPLAY_NAME,
    MAX_NOTE,
    MAX_PROFILE_FIELD_CHARS,
    MAX_PROFILE_FIELDS,
    credential_account_entity,
    relationship_entity,
    stored_profile_fields,
)
from kicau.events import (
    AccountHidden,
    AccountRegistered,
    AccountScaleChanged,
    AccountWarned,
    FollowCreated,
    FollowDeleted,
    FollowRequested,
    FollowRequestSettled,
    ReportFiled,
)
from kicau.featured_tags import AccountTagUses, FeaturedTagStore
from kicau.follow_options import DEFAULT, EncodedOptions, FollowOptionStore, encode_options
from kicau.follow_requests import FollowRequest, FollowRequestStore
from kicau.follow_suggestions import DismissalStore
from kicau.ids import SnowflakeGenerator, time_of_id
from kicau.ip_blocks import IpBlockStore
from kicau.large_accounts import LargeAccounts, followee_changes
from kicau.lists import DEFAULT_REPLIES_POLICY, MAX_LISTS, MAX_MEMBERS, MAX_TITLE, AccountList, ListStore
from kicau.metrics import MODERATION_NOTICES_UNSENT
from kicau.publishing import publish
from kicau.reports import Report, ReportStore, category_of
from kicau.reports import entity as report_entity
from kicau.settings import CommonSettings
from kicau.staff import ADMIN_SCOPES, StaffStore, role_entity
from kicau.tag_follows import TagFollowStore
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.graph import authorization, sign_ups
from services.graph.authorization import AuthorizationCodes
from services.graph.filters import FilterService
from services.graph.passwords import Passwords
from services.graph.sign_ups import PendingSignUps
from services.graph.store import GraphStore

log = logging.getLogger(__name__)

EMAIL_TAKEN = "Validation failed: E-mail has already been taken"
KNOWN_SCOPES = {"read", "write", "follow", "push", "profile"}
USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{1,30}$")
# Familiar followers (GET /api/v1/accounts/familiar_followers): how many targets a request reads, how many of the
# viewer's follows are matched against each target's followers, and how many are shown for each.
FAMILIAR_TARGETS, FAMILIAR_FOLLOWS_READ, FAMILIAR_SHOWN = 10, 5000, 40
MAX_ID = (1 << 63) - 1
# How deep an account search reads the index of names (kicau/account_names.py): an offset past it finds nothing.
SEARCHED_NAMES = 400


async def _nothing() -> set[int]:
    return set()


async def _no_account() -> int | None:
    return None


# A read of a prefix index of names (kicau/account_names.py): (prefix, how many, after which entry) -> entries.
IndexRead = Callable[[str, int, tuple[str, int] | None], Awaitable[list[tuple[str, int]]]]
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
MAX_PAGE = 80
# A username's or address's claim whose account is still missing this long after the claim was left by a sign-up
# that died halfway (``GraphService._claim``): far longer than a sign-up takes between its claims and its account
# (a password's hash, a few writes).
ABANDONED_CLAIM_SECONDS = 30
AUTHORIZED_AT_ONCE = 8  # follow requests authorized at once when an account unlocks


def _list_title(title: str) -> str:
    """A list's title as given, but not blank nor longer than ``MAX_TITLE`` (422)."""
    if not title.strip():
        raise ApiError(422, "Validation failed: Title can't be blank")
    if len(title) > MAX_TITLE:
        raise ApiError(422, f"Validation failed: Title is too long (maximum is {MAX_TITLE} characters)")
    return title


def parse_scopes(raw: str | None, default: str = "read") -> set[str]:
    scopes = set((raw or default).replace("+", " ").split())
    for scope in scopes:
        if scope.split(":", 1)[0] not in KNOWN_SCOPES and scope not in ADMIN_SCOPES:
            raise ApiError(400, f"The requested scope is invalid, unknown, or malformed: {scope}")
    return scopes


def _scopes_within(app: dict[str, Any], scope: str | None) -> set[str]:
    """The scopes a token or a code asks (``read`` if none), each the app's or under one of the app's."""
    requested = parse_scopes(scope)
    allowed = set(app["scopes"] or ())
    if not all(tokens.granted(s, allowed) for s in requested):
        raise ApiError(400, "The requested scope is invalid, unknown, or malformed.")
    return requested



def app_id(client_id: str) -> str:
    """An app's id: 48 bits of a hash of its client id, never 0 (within the 53 bits a JavaScript client reads
    exactly). Stable across reads, as Mastodon's is, with no column of its own."""
    digest = hashlib.blake2b(client_id.encode(), digest_size=6).digest()
    return str(int.from_bytes(digest, "big") or 1)


def _application(client_id: str, name: str, website: str | None, scopes: set[str],
                 redirect_uris: str, vapid_key: str) -> dict[str, Any]:
    """Mastodon's Application entity (what an app's registration answers beside its credentials)."""
    return {
        "id": app_id(client_id),
        "name": name,
        "website": website,
        "scopes": sorted(scopes),
        "redirect_uri": redirect_uris,
        "redirect_uris": redirect_uris.split(),
        "vapid_key": vapid_key,  # the instance's VAPID public key (kicau/web_push.py), for push subscriptions
    }


@dataclass
class GraphService:
    settings: CommonSettings
    store: GraphStore
    redis: Redis
    producer: AIOKafkaProducer
    cards: AccountCards
    ids: SnowflakeGenerator
    passwords: Passwords
    large: LargeAccounts
    tag_follows: TagFollowStore
    featured: FeaturedTagStore
    tag_uses: AccountTagUses
    hides: BlocksAndMutes
    follow_options: FollowOptionStore
    lists: ListStore
    names: AccountNames
    name_words: DisplayNameWords
    filters: FilterService
    notes: AccountNoteStore
    dismissals: DismissalStore
    directory_index: Directory
    codes: AuthorizationCodes
    requests: FollowRequestStore
    announcements: AnnouncementStore
    reports: ReportStore
    warnings: WarningStore  # what staff's actions on accounts left (kicau/account_warnings.py)
    standing: AccountStanding  # whose login is refused, who is limited (services/graph/accounts.py, admin.py)
    staff: StaffStore  # the operator's moderators, admins and owners (kicau/staff.py)
    email_blocks: EmailDomainBlockStore  # the e-mail domains no account may register with
    address_blocks: CanonicalEmailBlockStore  # the addresses no account may register with again
    ip_blocks: IpBlockStore  # the addresses staff refuse sign-ups or every request from (the gateways apply them)
    ips: AccountIps  # where accounts signed up and signed in from (kicau/account_ips.py), for staff
    audit: AuditLogStore  # what staff did (kicau/audit_log.py)
    pending_sign_ups: PendingSignUps  # the sign-ups waiting for staff's approval (services/graph/sign_ups.py)
    vapid_key: str  # the instance's VAPID public key (kicau/web_push.py)

    # Reports (kicau/reports.py) -----------------------------------------------------------------------------

    async def report(self, account_id: int, target_id: int, status_ids: tuple[int, ...], rule_ids: tuple[int, ...],
                     comment: str, category: str | None) -> dict[str, Any]:
        """File a report against ``target_id`` (404 if it does not exist, or if any status named is not one of its,
        as Mastodon finds them among the target's); the Report entity."""
        # The staff are told of the first open report against an account, not of every one that follows it (as
        # Mastodon tells them): whether one is open is read before this one is kept, so that two filed at once both
        # notify, never neither.
        target, authors, told_already = await asyncio.gather(
            self.cards.entity(target_id), self.reports.authors(status_ids), self.reports.any_open_against(target_id))
        if target is None or any(authors.get(status_id) != target_id for status_id in status_ids):
            raise ApiError(404, "Record not found")
        made = Report(self.ids.next_id(), account_id, target_id, tuple(dict.fromkeys(status_ids)),
                      tuple(dict.fromkeys(rule_ids)), comment, category_of(category, rule_ids))
        await self.reports.add(made)
        entity = report_entity(made, target)
        if not told_already:
            await self.tell(ReportFiled(report_id=made.id, account_id=account_id, target_id=target_id,
                                               report_json=json.dumps(entity, separators=(",", ":"))))
        return entity

    async def log_action(self, actor: int, action: str, target_type: str, target_id: int | str, *,
                         human: str = "", target_account_id: int | None = None,
                         target: dict[str, Any] | None = None) -> None:
        """An entry in the audit log (kicau/audit_log.py) for what ``actor`` just did."""
        await self.audit.add(ActionLog(self.ids.next_id(), actor, action, target_type, str(target_id), human,
                                       target_account_id, target))

    async def tell(self, event: AccountRegistered | ReportFiled | AccountWarned) -> None:
        """Publish a sign-up or a report for the staff's notifications, or a warning for its account's (the fanout
        tells them). What it tells of is kept already and is answered whatever happens here: a notice that cannot
        be published is logged and counted, never a failed request, which a client would repeat into a second
        report, a taken name or a second action."""
        try:
            await publish(self.producer, self.settings.kafka_follows_topic, event)
        except Exception:
            MODERATION_NOTICES_UNSENT.labels(event.__struct_config__.tag).inc()
            log.warning("no one was told of %s", event.__struct_config__.tag, exc_info=True)

    # Announcements (kicau/announcements.py) ----------------------------------------------------------------

    async def announcement_list(self, account_id: int, *, with_dismissed: bool) -> list[dict[str, Any]]:
        """The announcements shown now, oldest first (as Mastodon orders them), as the account reads them: without
        those it dismissed unless ``with_dismissed``."""
        now = datetime.now(UTC)
        shown = sorted((a for a in await self.announcements.every() if a.shown(now)),
                       key=lambda a: (a.starts_at or a.published_at, a.id))
        ids = [a.id for a in shown]
        read, reactions = await asyncio.gather(self.announcements.read_by(account_id, ids),
                                               self.announcements.reactions(ids, account_id))
        return [announcement_entity(a, read=a.id in read, reactions=reactions[a.id],
                                    public_url=self.settings.public_url)
                for a in shown if with_dismissed or a.id not in read]

    async def _shown_announcement(self, announcement_id: int) -> Announcement:
        found = await self.announcements.one(announcement_id)
        if found is None or not found.shown(datetime.now(UTC)):
            raise ApiError(404, "Record not found")
        return found

    async def dismiss_announcement(self, account_id: int, announcement_id: int) -> None:
        await self._shown_announcement(announcement_id)
        await self.announcements.dismiss(account_id, announcement_id)

    async def react_to_announcement(self, account_id: int, announcement_id: int, name: str, *, add: bool) -> None:
        """Add (or take back) the account's reaction: one emoji, at most ``MAX_REACTIONS`` different ones an
        announcement (Mastodon's 422s)."""
        await self._shown_announcement(announcement_id)
        if add:
            if not is_emoji(name):
                raise ApiError(422, "Validation failed: Name is not a recognized emoji")
            kinds = (await self.announcements.reactions([announcement_id], account_id))[announcement_id]
            if name not in kinds and len(kinds) >= MAX_REACTIONS:
                raise ApiError(422, "Validation failed: Maximum number of different reactions reached")
            await self.announcements.react(announcement_id, name, account_id)
        else:
            await self.announcements.unreact(announcement_id, name, account_id)
        # The user streams are told the count now (a reaction taken back that was never there changes nothing).
        count, _ = (await self.announcements.reactions([announcement_id], account_id))[announcement_id].get(name,
                                                                                                          (0, False))
        await tell_announcements(self.redis, "announcement.reaction",
                                 {"name": name, "count": count, "announcement_id": str(announcement_id)})

    # OAuth apps and tokens ----------------------------------------------------------------------------

    async def create_app(
        self, *, client_name: str, redirect_uris: str, scopes: str | None, website: str | None
    ) -> dict[str, Any]:
        granted = parse_scopes(scopes)
        client_id = secrets.token_urlsafe(32)
        client_secret = secrets.token_urlsafe(32)
        await self.store.insert_app(
            client_id=client_id, client_secret=client_secret, name=client_name, website=website,
            redirect_uri=redirect_uris, scopes=granted,
        )
        return {
            **_application(client_id, client_name, website, granted, redirect_uris, self.vapid_key),
            "client_id": client_id,
            "client_secret": client_secret,
            "client_secret_expires_at": 0,
        }

    async def application(self, client_id: str) -> dict[str, Any]:
        """The app a token was issued to, without its secrets (``GET /api/v1/apps/verify_credentials``)."""
        app = await self.store.app(client_id)
        if app is None:  # an app's tokens outlive it only until their cached copies expire
            raise ApiError(401, "The access token is invalid")
        return _application(client_id, app["name"], app.get("website"), set(app.get("scopes") or ()),
                            app.get("redirect_uri") or "", self.vapid_key)

    async def _authenticate_app(self, client_id: str | None, client_secret: str | None) -> dict[str, Any]:
        app = await self.store.app(client_id) if client_id else None
        # compare_digest on str refuses non-ASCII (TypeError, a 503 for a wrong secret): compare the bytes.
        if app is None or not client_secret or not secrets.compare_digest(app["client_secret"].encode(),
                                                                          client_secret.encode()):
            raise ApiError(401, "Client authentication failed due to unknown client, no client authentication "
                           "included, or unsupported authentication method.")
        return app

    async def issue_token(
        self, *, grant_type: str | None, client_id: str | None, client_secret: str | None,
        username: str | None, password: str | None, scope: str | None,
        code: str | None = None, redirect_uri: str | None = None, code_verifier: str | None = None,
        address: str | None = None,
    ) -> dict[str, Any]:
        """A token; ``address``: the client's (kicau/account_ips.py), recorded for a sign-in by password."""
        app = await self._authenticate_app(client_id, client_secret)
        if grant_type == "authorization_code":
            # The scopes are the code's, approved by the user; a ``scope`` sent along is not another request.
            return await self._exchange_code(app, code, redirect_uri, code_verifier)
        requested = _scopes_within(app, scope)
        account_id: int | None
        if grant_type == "password":
            account_id = await self._check_password(username, password)
        elif grant_type == "client_credentials":
            account_id = None
        else:
            raise ApiError(400, "The authorization grant type is not supported by the authorization server.")
        return await self._new_token(account_id, app["client_id"], requested, address)

    async def authorization_request(
        self, *, response_type: str | None, client_id: str | None, redirect_uri: str | None, scope: str | None,
        code_challenge: str | None, code_challenge_method: str | None,
    ) -> dict[str, Any]:
        """A request to ``/oauth/authorize`` checked as the form is shown and again as it is approved: the app,
        where the code may go, the scopes (within the app's) and the PKCE challenge."""
        if response_type != "code":
            raise ApiError(400, "The authorization server does not support this response type: use code.")
        app = await self.store.app(client_id) if client_id else None
        if app is None:
            raise ApiError(400, "Client authentication failed due to unknown client.")
        redirect = authorization.redirect_for(app["redirect_uri"] or "", redirect_uri)
        requested = _scopes_within(app, scope)
        challenge = authorization.checked_challenge(code_challenge, code_challenge_method)
        return {"client_id": app["client_id"], "client_name": app["name"], "website": app["website"],
                "redirect_uri": redirect, "scopes": sorted(requested), "code_challenge": challenge}

    async def authorize(
        self, *, response_type: str | None, client_id: str | None, redirect_uri: str | None, scope: str | None,
        code_challenge: str | None, code_challenge_method: str | None, login: str | None, password: str | None,
        address: str | None = None,
    ) -> dict[str, Any]:
        """The user signed in and approved the request: a code for it, and the address to send it to."""
        request = await self.authorization_request(
            response_type=response_type, client_id=client_id, redirect_uri=redirect_uri, scope=scope,
            code_challenge=code_challenge, code_challenge_method=code_challenge_method)
        if not login or not password:
            raise ApiError(401, "Sign in with your username (or e-mail address) and password.")
        try:
            account_id = await self._check_password(login, password)
        except ApiError as refused:
            if refused.status_code == 403:  # disabled: said to whoever gave its password
                raise
            raise ApiError(401, "Invalid username, e-mail address or password.") from refused
        code = await self.codes.issue(client_id=request["client_id"], account_id=account_id,
                                      scopes=set(request["scopes"]), redirect_uri=request["redirect_uri"],
                                      challenge=request["code_challenge"])
        await self._signed_in_from(account_id, address)  # the user's own browser, unlike the code's exchange
        return {"code": code, "redirect_uri": request["redirect_uri"]}

    async def _exchange_code(self, app: dict[str, Any], code: str | None, redirect_uri: str | None,
                             code_verifier: str | None) -> dict[str, Any]:
        if not code:
            raise ApiError(400, "The authorization grant is missing: code is required.")
        row = await self.codes.spend(code)
        # Spent before it is checked: a code tried with a wrong verifier or address is not tried again.
        if (row is None or row["client_id"] != app["client_id"]
                or (redirect_uri or row["redirect_uri"]) != row["redirect_uri"]
                or not authorization.verifies(row["code_challenge"], code_verifier)):
            raise ApiError(400, authorization.INVALID_GRANT)
        return await self._new_token(row["account_id"], app["client_id"], set(row["scopes"] or ()))

    async def _check_password(self, login: str | None, password: str | None) -> int:
        if not login or not password:
            raise ApiError(400, "The provided authorization grant is invalid: username and password are required.")
        login = login.strip()
        if "@" in login:
            account_id = await self.store.account_id_by_email(login.lower())
        else:
            account_id = await self.store.account_id_by_username(login.lower())
        row = await self.store.account(account_id) if account_id is not None else None
        if not await self.passwords.verify(row["password_hash"] if row else None, password):
            raise ApiError(400, "The provided authorization grant is invalid, expired, revoked, does not match "
                           "the redirection URI used in the authorization request, or was issued to another client.")
        assert account_id is not None and row is not None
        if row.get("disabled"):  # told only to whoever knows the password
            raise ApiError(403, tokens.DISABLED_LOGIN)
        return account_id

    async def _signed_in_from(self, account_id: int, address: str | None) -> None:
        """Record where the account signed in (or up) from, for staff (kicau/account_ips.py); nothing without an
        address the gateway passed."""
        if address is not None:
            await self.ips.record(account_id, address, datetime.now(UTC))

    async def _new_token(self, account_id: int | None, client_id: str, scopes: set[str],
                         address: str | None = None) -> dict[str, Any]:
        token = tokens.new_token()
        token_hash = tokens.hash_token(token)
        await self.store.insert_token(token_hash=token_hash, account_id=account_id, client_id=client_id,
                                      scopes=scopes)
        if account_id is not None:  # a sign-in, in the instance's weekly activity (kicau/instance_usage.py)
            await asyncio.gather(resp.round_trip(self.redis, instance_usage.login_commands(account_id)),
                                 self._signed_in_from(account_id, address))
        return {
            "access_token": token,
            "token_type": "Bearer",
            "scope": " ".join(sorted(scopes)),
            "created_at": int(time.time()),
        }

    async def resolve_token(self, token_hash: str) -> TokenInfo | None:
        started = time.monotonic()
        info = await tokens.cached(self.redis, token_hash)
        if info is not None:
            return info
        row = await self.store.token(token_hash)
        if row is None:
            return None
        account_id = row["account_id"]
        standing = await self.standing.of(account_id) if account_id is not None else None
        info = TokenInfo(account_id=account_id, client_id=row["client_id"], scopes=sorted(row["scopes"] or ()),
                         disabled=standing is not None and standing.login_refused,
                         pending=standing is not None and standing.pending)
        if time.monotonic() - started <= tokens.FRESH_RESOLUTION_SECONDS:
            await tokens.cache(self.redis, token_hash, info)
        return info

    async def revoke(self, *, token: str | None, client_id: str | None, client_secret: str | None) -> None:
        app = await self._authenticate_app(client_id, client_secret)
        if not token:
            raise ApiError(400, "token is required")
        token_hash = tokens.hash_token(token)
        row = await self.store.token(token_hash)
        # RFC 7009: revoking an unknown token is a success; another client's token is left alone.
        if row is None or row["client_id"] != app["client_id"]:
            if row is not None:
                raise ApiError(403, "You are not authorized to revoke this token")
            return
        if row["account_id"] is not None:
            # The token's push subscription goes first (services/graph/push_subscriptions.py): a retry of a
            # revoke that failed in between still finds the token, and nothing is pushed for a revoked session.
            account_id = int(row["account_id"])
            await web_push.forget_subscriptions(self.redis, account_id)  # push services' copies (before and after)
            await self.store.forget_push_subscription(account_id, token_hash)
            await web_push.forget_subscriptions(self.redis, account_id)
        await self.store.delete_token(token_hash)
        await tokens.forget(self.redis, token_hash)
        await tokens.end_streams(self.redis, token_hash=token_hash)  # its open streams end, as on Mastodon

    # Accounts -----------------------------------------------------------------------------------------

    async def register(
        self, *, app_token: TokenInfo, username: str | None, email: str | None, password: str | None,
        agreement: bool, locale: str | None, address: str | None = None, reason: str | None = None,
    ) -> dict[str, Any]:
        """A new account and a token for it. One held for staff's approval (services/graph/sign_ups.py) is
        neither searchable nor in the directory until approved, and its token is refused until then."""
        held = await sign_ups.held_for_approval(self, address)
        reason = sign_ups.checked_reason(reason, self.settings.reason_required)
        errors: dict[str, list[dict[str, str]]] = {}
        # fullmatch: with match, "$" also matches before a final newline, and "name\n" was a valid username.
        if not username or not USERNAME_RE.fullmatch(username):
            errors["username"] = [{"error": "ERR_INVALID", "description": "must be 1-30 letters, digits or _"}]
        if not email or not EMAIL_RE.fullmatch(email):
            errors["email"] = [{"error": "ERR_INVALID", "description": "is not a valid e-mail address"}]
        if not password or not 8 <= len(password) <= 72:
            errors["password"] = [{"error": "ERR_INVALID", "description": "must be 8 to 72 characters"}]
        if not agreement:
            errors["agreement"] = [{"error": "ERR_ACCEPTED", "description": "must be accepted"}]
        if errors:
            raise ApiError(422, "Validation failed: " + ", ".join(f"{k} is invalid" for k in errors))
        assert username and email and password
        # Before anything is claimed: a refused sign-up leaves nothing behind but its count in the block's history.
        covering, blocked_address = await asyncio.gather(self.email_blocks.covering(email),
                                                         self.address_blocks.matching(email))
        blocked = email_domain_blocks.refusing(covering)
        if blocked is not None:
            await resp.round_trip(self.redis, email_domain_blocks.refusal_commands(blocked.domain, email),
                                  attempts=1)
            raise ApiError(422, email_domain_blocks.REFUSED)
        if blocked_address is not None:
            raise ApiError(422, EMAIL_TAKEN)  # as Mastodon answers it: the address's owner is not told why
        if covering:  # only blocks that hold sign-ups for approval (sign_ups.py): counted in the history alike
            held = True
            await resp.round_trip(self.redis, email_domain_blocks.refusal_commands(covering[0].domain, email),
                                  attempts=1)
        account_id = self.ids.next_id()
        username_key = username.lower()
        email_key = email.lower()
        if not await self._claim(username_key, account_id, self.store.claim_username,
                                 self.store.account_id_by_username, self.store.take_over_username):
            raise ApiError(422, "Validation failed: Username has already been taken")
        try:
            if not await self._claim(email_key, account_id, self.store.claim_email, self.store.account_id_by_email,
                                     self.store.take_over_email):
                raise ApiError(422, EMAIL_TAKEN)
            crash_point("graph.register.claimed")
            if held:  # listed for staff before it exists: no waiting account is missing from the list
                await self.pending_sign_ups.add(account_id)
            else:
                # Searchable and in the directory before it exists (kicau/account_names.py, kicau/directory.py): an
                # entry left by a failure names no account.
                await resp.round_trip(self.redis, [self.names.add_command(username_key, account_id),
                                                   directory.joined_command(account_id)])
            password_hash = await self.passwords.hash(password)
            await self.store.insert_account(
                account_id=account_id, username=username, email=email_key, display_name=username,
                password_hash=password_hash, pending=held, reason=reason,
            )
        except BaseException:
            # Leave no half-registered account: release the name and the address (each only if this sign-up holds
            # it) so the user can retry with them, and take it off staff's waiting list.
            await self.store.release_username(username_key, account_id)
            await self.store.release_email(email_key, account_id)
            if held:
                await self.pending_sign_ups.drop(account_id)
            raise
        await self.tell(AccountRegistered(account_id=account_id))
        scopes = set(app_token.scopes) & {"read", "write", "follow", "push"} or {"read"}
        return await self._new_token(account_id, app_token.client_id, scopes, address)

    async def _claim(self, key: str, account_id: int, claim: Callable[[str, int], Awaitable[bool]],
                     holder_of: Callable[[str], Awaitable[int | None]],
                     take_over: Callable[[str, int, int], Awaitable[bool]]) -> bool:
        """Claim a username or an address for a new account; one a sign-up claimed and then never made its account
        for (the graph service died between: its rollback never ran) is taken over once that is plainly over:
        ``ABANDONED_CLAIM_SECONDS`` after the claim (its holder's id tells when), with no account of that id."""
        if await claim(key, account_id):
            return True
        holder = await holder_of(key)
        if holder is None or time.time() - time_of_id(holder).timestamp() < ABANDONED_CLAIM_SECONDS:
            return False
        if await self.store.account(holder) is not None:
            return False
        log.warning("a sign-up's claim of %r by %d was never followed by its account: taken over", key, holder)
        return await take_over(key, holder, account_id)

    async def accounts(self, account_ids: list[int]) -> bytes:
        """The accounts that exist among ``account_ids``, in the order asked (each once): their cards, joined. One
        whose sign-up waits for staff is left out, as its profile is 404 (sign_ups.py)."""
        wanted = list(dict.fromkeys(account_ids))
        cards, waiting = await asyncio.gather(self.cards.cards(set(wanted)), self.standing.pending_among(wanted))
        return b"[" + b",".join(cards[a] for a in wanted if a in cards and a not in waiting) + b"]"

    async def account(self, account_id: int) -> dict[str, Any]:
        """The account's profile; 404 for none, and for one whose sign-up waits for staff (sign_ups.py)."""
        entity = await self.cards.entity(account_id, for_others=True)
        if entity is None:
            raise ApiError(404, "Record not found")
        return entity

    async def credentials(self, account_id: int) -> dict[str, Any]:
        entity = await self.account(account_id)
        row, role = await asyncio.gather(self.store.account(account_id), self.staff.role_of(account_id))
        # Mastodon's CredentialAccount carries the user's role: clients show their moderation menus by its
        # permissions.
        return {**credential_account_entity(entity, row or {}), "role": role_entity(role)}

    async def update_profile(self, account_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Change the account's display name, note, bot or locked flag (Mastodon's limits: 30 and 500 characters),
        its profile fields (all of them at once, ``_profile_fields``) or its posting defaults (``source``,
        kicau/posting_defaults.py), in one write; the account as verify_credentials shows it. The cached card goes
        after the write, and every copy of it with it (status pages, notifications and streams splice the card in as
        they render)."""
        display_name, note = changes.get("display_name"), changes.get("note")
        if display_name is not None and len(display_name) > MAX_DISPLAY_NAME:
            raise ApiError(422, f"Validation failed: Display name is too long (maximum is {MAX_DISPLAY_NAME}"
                                " characters)")
        if note is not None and len(note) > MAX_NOTE:
            raise ApiError(422, f"Validation failed: Note is too long (maximum is {MAX_NOTE} characters)")
        if "fields" in changes:
            changes["fields"] = stored_profile_fields(_profile_fields(changes["fields"]))
        for picture in ("avatar", "header"):
            if changes.get(picture) and not media.is_picture_path(changes[picture]):
                raise ApiError(422, f"Validation failed: {picture} must name a profile picture's file")
        defaults = posting_defaults.checked(changes.pop("source", None) or {})
        changes.update(defaults)
        # Posters read the defaults through copies (kicau/posting_defaults.py): retired before the write and after.
        retire = posting_defaults.change_commands_of(account_id) if defaults else []
        if changes:
            old_name = None
            if display_name is not None:
                # Found by its new name's words before it has it, its old name's other words gone once it has
                # not (kicau/account_names.py: readers check each entry against the name).
                row = await self.store.account(account_id)
                old_name = str((row or {}).get("display_name") or "")
                added = self.name_words.add_commands(account_id, display_name)
                if added:  # an empty name, or one of no words, has none
                    await resp.round_trip(self.redis, added)
            if retire:
                await resp.round_trip(self.redis, retire)
            await self.store.update_profile(account_id, changes)
            if retire:
                await resp.round_trip(self.redis, retire)
            await self.cards.forget(account_id)
            if changes.get("locked") is False:
                # Unlocked (or said again, as a retry would): whoever was waiting follows now.
                await self._authorize_all(account_id)
            if old_name is not None and display_name is not None:
                gone = self.name_words.remove_commands(account_id, old_name, display_name)
                if gone:
                    await resp.round_trip(self.redis, gone)
        return await self.credentials(account_id)

    async def lookup(self, acct: str) -> dict[str, Any]:
        username = acct.strip().lstrip("@").split("@", 1)[0].lower()
        account_id = await self.store.account_id_by_username(username) if username else None
        if account_id is None:
            raise ApiError(404, "Record not found")
        return await self.account(account_id)

    async def search_accounts(self, *, query: str, limit: int, offset: int = 0, viewer: int | None = None,
                              following: bool = False) -> list[dict[str, Any]]:
        """Accounts whose username begins with the query's (``@name`` or ``name@domain`` read as ``name``): the
        one it names first, then in order of name; then accounts whose display name has a word beginning with
        each of the query's words, in order of the first such word (kicau/account_names.py). As on Mastodon, the
        account it names is found whatever blocks lie between (toot unblocks an account by finding it so); of the
        others, none the viewer blocks or that blocks it; with ``following``, only accounts the viewer follows.
        ``offset`` skips that many. Each index is read a window at a time, ``SEARCHED_NAMES`` entries deep at most
        (ten times that for ``following``, whose accounts may be few among many names)."""
        if limit < 1:
            return []
        username = query.strip().lstrip("@").split("@", 1)[0].lower()
        terms = name_words(query)
        # fullmatch: with match, "$" also matches before a final newline, and "name\n" was a valid username.
        by_username = bool(username) and USERNAME_RE.fullmatch(username) is not None
        if not by_username and not terms:
            return []
        wanted = offset + limit
        depth = SEARCHED_NAMES * (10 if following else 1)
        # The name itself from Cassandra first (what registration claims), then the indexes' names.
        exact, blocking, blocked_by = await asyncio.gather(
            self.store.account_id_by_username(username) if by_username else _no_account(),
            self.hides.blocking(viewer) if viewer is not None else _nothing(),
            self.hides.blocked_by(viewer) if viewer is not None else _nothing())
        if exact is not None and (await self.standing.of(exact)).pending:
            exact = None  # its name is claimed, but to others it is not there until staff approve it (sign_ups.py)
        follower = viewer if following else None
        found: list[dict[str, Any]] = []
        if exact is not None:
            found += await self._searched([exact], set(), follower, lambda e: True)
        unwanted = blocking | blocked_by
        seen: set[int] = {exact} if exact is not None else set()
        if by_username:
            found += await self._search_index(self.names.starting_with, username, wanted - len(found), depth, seen,
                                              unwanted, follower,
                                              lambda e: str(e["username"]).lower().startswith(username))
        if terms and len(found) < wanted:
            found += await self._search_index(self.name_words.starting_with, terms[0], wanted - len(found), depth,
                                              seen, unwanted, follower,
                                              lambda e: names_match(str(e.get("display_name") or ""), terms))
        return found[offset:wanted]

    async def _search_index(self, read: IndexRead, prefix: str, wanted: int, depth: int, seen: set[int],
                            unwanted: set[int], follower: int | None,
                            matches: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Up to ``wanted`` accounts whose entries in one index begin with ``prefix``, read a window at a time and
        ``depth`` entries deep at most, each account once (``seen``, updated) and as ``_searched`` keeps them."""
        found: list[dict[str, Any]] = []
        after: tuple[str, int] | None = None
        while len(found) < wanted and depth > 0:
            window = min(depth, max(2 * wanted + 10, 100))
            entries = await read(prefix, window, after)
            depth -= window
            candidates = [i for i in dict.fromkeys(i for _, i in entries) if i not in seen]
            seen.update(candidates)
            found += await self._searched(candidates, unwanted, follower, matches)
            if len(entries) < window:
                break
            after = entries[-1]
        return found

    async def _searched(self, candidates: list[int], unwanted: set[int], follower: int | None,
                        matches: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """The entities of the ``candidates`` that exist and still ``matches`` (an index's entry may outlive a
        change of name), are not ``unwanted`` and, given a ``follower``, are followed by it, in order."""
        entities = await asyncio.gather(*(self.cards.entity(i) for i in candidates))
        found = [(i, e) for i, e in zip(candidates, entities, strict=True)
                 if listed(e) and i not in unwanted and matches(e)]
        if follower is not None and found:
            followed = await self.store.followees_among(follower, [i for i, _ in found])
            found = [(i, e) for i, e in found if i in followed]
        return [e for _, e in found]

    async def familiar_followers(self, *, viewer_id: int, targets: list[int]) -> list[dict[str, Any]]:
        """For each of the first ``FAMILIAR_TARGETS`` targets (each once), its followers the viewer follows: the
        viewer's follows (``FAMILIAR_FOLLOWS_READ`` at most, by account id) matched against the target's followers
        100 at a time, the first ``FAMILIAR_SHOWN`` shown."""
        targets = list(dict.fromkeys(targets))[:FAMILIAR_TARGETS]
        if not targets:
            return []
        follows: list[int] = []
        while len(follows) < FAMILIAR_FOLLOWS_READ:
            page = await self.store.following_page(viewer_id, follows[-1] if follows else MAX_ID,
                                                   min(1000, FAMILIAR_FOLLOWS_READ - len(follows)))
            follows += page
            if len(page) < 1000:
                break
        among = await asyncio.gather(*(self.store.followers_among(t, [f for f in follows if f != t])
                                       for t in targets)) if follows else [[] for _ in targets]
        shown = [found[:FAMILIAR_SHOWN] for found in among]
        entities = await asyncio.gather(*(self.cards.entity(i) for i in {i for found in shown for i in found}))
        by_id = {int(e["id"]): e for e in entities if listed(e)}
        return [{"id": str(target), "accounts": [by_id[i] for i in found if i in by_id]}
                for target, found in zip(targets, shown, strict=True)]

    # Follow graph -------------------------------------------------------------------------------------

    async def _require_account(self, account_id: int) -> None:
        """404 unless the account exists for others: not one whose sign-up waits for staff (sign_ups.py)."""
        row = await self.store.account(account_id)
        if row is None or row.get("approval_pending"):
            raise ApiError(404, "Record not found")

    async def follow(self, *, follower_id: int, followee_id: int, reblogs: bool | None = None,
                     notify: bool | None = None, languages: list[str] | None = None) -> dict[str, Any]:
        """Follow an account, or change an existing follow's options (kicau/follow_options.py): those given
        replace the follow's own (an empty ``languages``: every language), the others stay; a new follow starts
        from the defaults. A locked account not yet followed is asked instead (kicau/follow_requests.py)."""
        if follower_id == followee_id:
            raise ApiError(403, "You cannot follow yourself")
        followee = await self.store.account(followee_id)
        # No one follows a suspended account, nor one whose sign-up waits (sign_ups.py): to others it is not there.
        if followee is None or followee.get("suspended_at") is not None or followee.get("approval_pending"):
            raise ApiError(404, "Record not found")
        if await self.hides.blocked_either_way(follower_id, followee_id):
            raise ApiError(403, "This action is not allowed")
        if followee.get("locked") and not await self.store.is_following(follower_id, followee_id):
            options = DEFAULT.changed(reblogs=reblogs, notify=notify, languages=languages)
            claim = await self.requests.claim(follower_id, followee_id, self.ids.next_id(), options)
            if not claim.created and (reblogs is not None or notify is not None or languages is not None):
                await self.requests.change_options(claim.request, claim.request.options.changed(
                    reblogs=reblogs, notify=notify, languages=languages))
            crash_point("graph.follow_request.claimed")
            if not claim.notified:
                # With the request's id as the notification's: a publish repeated after a crash records it once.
                await publish(self.producer, self.settings.kafka_follows_topic,
                              FollowRequested(requester_id=follower_id, target_id=followee_id,
                                              request_id=claim.request.request_id))
                await self.requests.notified(claim.request)
            return await self.relationship(viewer_id=follower_id, target_id=followee_id)
        await self._follow_edge(follower_id, followee_id, reblogs=reblogs, notify=notify, languages=languages,
                                notification_id=self.ids.next_id())
        return await self.relationship(viewer_id=follower_id, target_id=followee_id)

    async def _follow_edge(self, follower_id: int, followee_id: int, *, reblogs: bool | None,
                           notify: bool | None, languages: Iterable[str] | None, notification_id: int) -> None:
        """Every step of a follow (each idempotent). ``notification_id``: the followee's ``follow``
        notification, if the edge is new; 0 for none (an authorized request notified already)."""
        # The reader's copy of its large followees (kicau/large_accounts.py) is dropped before the edge and options
        # change and again after.
        await resp.round_trip(self.redis, followee_changes(follower_id))
        # Only a new follow notifies. The edge itself records the notification it owes until the event carrying
        # it is published: a retry after a crash anywhere in between publishes it again, with the same id (the
        # fanout records it once), and a repeated follow of a settled edge notifies no one.
        claim = await self.store.claim_follow(follower_id, followee_id, notification_id)
        if claim.created:
            await self.store.change_counts(follower_id, followee_id, +1)
        crash_point("graph.follow.claimed")
        # The fanout's copies of the followee's follower list are dropped before and after the row changes
        # (the protocol in kicau/follower_lists.py).
        await follower_lists.forget(self.redis, followee_id)
        await self.store.add_follower_row(follower_id, followee_id)
        if claim.created or reblogs is not None or notify is not None or languages is not None:
            # Between the two drops, as the row: the fanout reads the options under the follower list's version.
            current = DEFAULT if claim.created else await self.follow_options.of_follow(follower_id, followee_id)
            await self.follow_options.write(follower_id, followee_id,
                                            current.changed(reblogs=reblogs, notify=notify, languages=languages))
        await follower_lists.forget(self.redis, followee_id)
        # Published on every call, retries included: the fanout's backfill is idempotent, and a retry after a
        # crash between the steps above must still reach the follower's timeline.
        await publish(self.producer, self.settings.kafka_follows_topic,
                      FollowCreated(follower_id=follower_id, followee_id=followee_id,
                                    notification_id=claim.unsent_notification))
        if claim.unsent_notification:
            await self.store.notification_sent(follower_id, followee_id, claim.unsent_notification)
        await self._review_scale(followee_id)
        await self.cards.forget(follower_id, followee_id)
        await resp.round_trip(self.redis, followee_changes(follower_id))

    async def unfollow(self, *, follower_id: int, followee_id: int) -> dict[str, Any]:
        """End a follow, or withdraw a request to follow."""
        await self._require_account(followee_id)
        await self._end_follow(follower_id, followee_id)
        return await self.relationship(viewer_id=follower_id, target_id=followee_id)

    async def remove_follower(self, *, account_id: int, follower_id: int) -> dict[str, Any]:
        """The account ends another's follow of it (Mastodon's remove_from_followers): an unfollow made for the
        follower, its statuses leaving the follower's home timeline as after any unfollow."""
        await self._require_account(follower_id)
        await self._end_follow(follower_id, account_id)
        return await self.relationship(viewer_id=account_id, target_id=follower_id)

    # Follow requests (kicau/follow_requests.py) ----------------------------------------------------------------

    async def follow_requests(self, *, account_id: int, max_id: int | None, limit: int,
                              ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of the accounts asking to follow the account, newest request first, and the next page's
        cursor (a request id)."""
        limit = max(1, min(limit, MAX_PAGE))
        found = await self.requests.page(account_id, max_id if max_id is not None else MAX_ID, limit)
        entities = await asyncio.gather(*(self.cards.entity(requester) for _, requester in found))
        return [e for e in entities if e is not None], found[-1][0] if len(found) == limit else None

    async def authorize_request(self, *, account_id: int, requester_id: int) -> dict[str, Any]:
        """The account lets the requester follow it: the follow, with the request's options and no notification
        (the request gave one), then the request ends. A retry after a crash in between finds the request still
        there and does both again (each idempotent)."""
        await self._authorize(await self._waiting_request(account_id, requester_id))
        return await self.relationship(viewer_id=account_id, target_id=requester_id)

    async def _waiting_request(self, account_id: int, requester_id: int) -> FollowRequest:
        """The requester's request to follow the account, or a 404 (none, or ended already)."""
        request = await self.requests.find(requester_id, account_id)
        if request is None:
            raise ApiError(404, "Record not found")
        return request

    async def _authorize(self, request: FollowRequest) -> None:
        requester_id, account_id = request.requester_id, request.target_id
        if not await self.hides.blocked_either_way(requester_id, account_id):
            options = request.options
            await self._follow_edge(requester_id, account_id, reblogs=options.reblogs, notify=options.notify,
                                    languages=options.languages or (), notification_id=0)
        crash_point("graph.follow_request.authorized")
        await self._settle_request(request)

    async def reject_request(self, *, account_id: int, requester_id: int) -> dict[str, Any]:
        await self._settle_request(await self._waiting_request(account_id, requester_id))
        return await self.relationship(viewer_id=account_id, target_id=requester_id)

    async def _settle_request(self, request: FollowRequest) -> None:
        """End a request however it ends. Its notification's removal is published first: a retry after a crash
        finds the request still there and publishes it again (removing a notification twice removes it)."""
        await publish(self.producer, self.settings.kafka_follows_topic,
                      FollowRequestSettled(requester_id=request.requester_id, target_id=request.target_id,
                                           request_id=request.request_id))
        await self.requests.settle(request)

    async def _withdraw_request(self, requester_id: int, target_id: int) -> None:
        request = await self.requests.find(requester_id, target_id)
        if request is not None:
            await self._settle_request(request)

    async def _authorize_all(self, account_id: int) -> None:
        """Every request waiting for an account that unlocked, authorized (Mastodon's does so too), a page at a
        time; a PATCH repeated after a crash does the rest."""
        while True:
            found = await self.requests.page(account_id, MAX_ID, MAX_PAGE)
            for start in range(0, len(found), AUTHORIZED_AT_ONCE):
                # Each read again: one withdrawn or rejected since the page was read is skipped, not an error.
                requests = await asyncio.gather(*(self.requests.find(requester, account_id)
                                                  for _, requester in found[start:start + AUTHORIZED_AT_ONCE]))
                await asyncio.gather(*(self._authorize(r) for r in requests if r is not None))
            if len(found) < MAX_PAGE:
                return

    async def _end_follow(self, follower_id: int, followee_id: int) -> None:
        """Every step of an unfollow (each idempotent; a follow that is not there: only the event, which removes
        nothing), and a request to follow withdrawn."""
        await self._withdraw_request(follower_id, followee_id)
        await resp.round_trip(self.redis, followee_changes(follower_id))
        if await self.store.release_follow(follower_id, followee_id):
            await self.store.change_counts(follower_id, followee_id, -1)
        await follower_lists.forget(self.redis, followee_id)
        # The followee leaves the follower's lists too (kicau/lists.py), as on Mastodon; the memberships it was
        # found by go last, so a retry after a crash finds them again.
        holding = await self.lists.holding(follower_id, followee_id)
        await asyncio.gather(self.store.remove_follower_row(follower_id, followee_id),
                             self.follow_options.remove(follower_id, followee_id),
                             self.notes.unendorse(follower_id, followee_id),
                             *(self.lists.drop_member_list(list_id, followee_id) for list_id in holding),
                             *(self.lists.unlist_member(list_id, followee_id) for list_id in holding))
        await asyncio.gather(*(self.lists.drop_membership(follower_id, list_id, followee_id) for list_id in holding))
        await follower_lists.forget(self.redis, followee_id)
        if holding:
            await self.redis.delete(*(keys.list_feed(list_id) for list_id in holding))
        await publish(self.producer, self.settings.kafka_follows_topic,
                      FollowDeleted(follower_id=follower_id, followee_id=followee_id))
        await self._review_scale(followee_id)
        await self.cards.forget(follower_id, followee_id)
        await resp.round_trip(self.redis, followee_changes(follower_id))

    async def _review_scale(self, account_id: int) -> None:
        """Move an account in or out of the large-account registry when its audience crosses the threshold.

        The registry is written before the event is published, and the event travels with the account's own
        statuses (same topic, same key), so the fanout switches paths at one exact point of the account's
        stream. Run on every follow and unfollow (retries too), so a crash between the steps heals."""
        count = await self.store.followers_count(account_id)
        # Its place among the most followed, for follow suggestions (kicau/follow_suggestions.py): the count itself,
        # so a retry sets the same.
        await resp.round_trip(self.redis, [follow_suggestions.followers_command(account_id, count)])
        threshold = self.settings.large_account_threshold
        is_large = await self.large.contains(account_id)
        if not is_large and count >= threshold:
            await self.large.add(account_id)
            await publish(self.producer, self.settings.kafka_statuses_topic,
                          AccountScaleChanged(account_id=account_id, large=True))
        elif is_large and count < threshold * self.settings.large_account_exit_ratio:
            await self.large.remove(account_id)
            await publish(self.producer, self.settings.kafka_statuses_topic,
                          AccountScaleChanged(account_id=account_id, large=False))

    # Blocks and mutes (kicau/blocks_and_mutes.py) -----------------------------------------------------------

    async def block(self, *, account_id: int, target_id: int) -> dict[str, Any]:
        """Block an account (again: nothing changes): the follows between the two end, both ways, and neither
        may follow the other until it is undone; the target's statuses leave the account's home timeline."""
        await self._hide(account_id, target_id, BLOCK, notifications=True, ttl=0)
        # The follows end after the hider row is written: the fanout never again writes the target's statuses to
        # the account, whatever it reads of the follows meanwhile. Each is a plain unfollow (its event removes the
        # other's statuses), repeated by a retry.
        await self._end_follow(account_id, target_id)
        await self._end_follow(target_id, account_id)
        return await self.relationship(viewer_id=account_id, target_id=target_id)

    async def mute(self, *, account_id: int, target_id: int, notifications: bool, duration: int) -> dict[str, Any]:
        """Mute an account (again: its ``notifications`` and ``duration`` replace the previous ones), for
        ``duration`` seconds or, with 0, until unmuted; the follow stays."""
        await self._hide(account_id, target_id, MUTE, notifications=notifications, ttl=duration)
        return await self.relationship(viewer_id=account_id, target_id=target_id)

    async def unblock(self, *, account_id: int, target_id: int) -> dict[str, Any]:
        await self._unhide(account_id, target_id, BLOCK)
        return await self.relationship(viewer_id=account_id, target_id=target_id)

    async def unmute(self, *, account_id: int, target_id: int) -> dict[str, Any]:
        """Unmute an account; if the account follows it, its newest statuses come back to the home timeline (the
        follow's backfill, published again: it notifies no one)."""
        if (await self._unhide(account_id, target_id, MUTE) and await self.store.is_following(account_id, target_id)
                and not await self._kept_apart(account_id, [target_id])):
            await publish(self.producer, self.settings.kafka_follows_topic,
                          FollowCreated(follower_id=account_id, followee_id=target_id))
        return await self.relationship(viewer_id=account_id, target_id=target_id)

    async def _hide(self, account_id: int, target_id: int, kind: Kind, *, notifications: bool, ttl: int) -> None:
        if account_id == target_id:
            raise ApiError(403, "This action is not allowed")
        await self._require_account(target_id)
        # The readers' copies of what each of the two leaves out are dropped before the claim and after the rows
        # (the protocol in kicau/reader_copies.py): the account's reads leave the target out from the answer on,
        # and, for a block, the target's leave the account out. So is the account's copy of its large followees.
        await resp.round_trip(self.redis, [*copy_changes(account_id, target_id), *followee_changes(account_id)])
        hide_id = await self.hides.claim(account_id, target_id, kind, self.ids.next_id(), ttl)
        crash_point("graph.hide.claimed")
        # The fanout's copies of the target's followers and hiders (and, for a block, the account's: its statuses
        # no longer reach the target either) are dropped before and after the rows change (the protocol in
        # kicau/follower_lists.py), so its next batch leaves the account out.
        changed = (target_id, account_id) if kind == BLOCK else (target_id,)
        await follower_lists.forget(self.redis, *changed)
        await self.hides.settle(account_id, target_id, kind, hide_id, notifications=notifications, ttl=ttl)
        await follower_lists.forget(self.redis, *changed)
        await resp.round_trip(self.redis, [*copy_changes(account_id, target_id), *followee_changes(account_id)])
        # What the account's home timeline already holds of the target goes; published on every call, retries
        # included (removing what is gone changes nothing).
        await publish(self.producer, self.settings.kafka_follows_topic,
                      AccountHidden(account_id=account_id, target_id=target_id))
        await self._announce_hides(account_id, target_id)

    async def _unhide(self, account_id: int, target_id: int, kind: Kind) -> bool:
        """Undo a block or mute (none: nothing changes); whether there was one. The claim goes last: with no
        claim, nothing the fanout reads is left."""
        await self._require_account(target_id)
        hide = (await self.hides.hides(account_id, target_id)).get(kind)
        if hide is None:
            return False
        changed = (target_id, account_id) if kind == BLOCK else (target_id,)
        await follower_lists.forget(self.redis, *changed)
        await resp.round_trip(self.redis, [*copy_changes(account_id, target_id), *followee_changes(account_id)])
        await self.hides.unsettle(account_id, target_id, kind, hide.hide_id)
        await follower_lists.forget(self.redis, *changed)
        crash_point("graph.unhide.unlisted")
        await self.hides.release(account_id, target_id, kind, hide.hide_id)
        # After the claim too: the copies are built from the claims.
        await resp.round_trip(self.redis, [*copy_changes(account_id, target_id), *followee_changes(account_id)])
        await self._announce_hides(account_id, target_id)
        return True

    async def _announce_hides(self, account_id: int, target_id: int) -> None:
        """Tell the gateways what each of two accounts' public and hashtag streams now leave out of the other's
        (``keys.HIDES_CHANNEL``): ``account:target:1|0:1|0``, whether the account's streams leave the target out (it
        blocks or mutes the target, or the target blocks it), then the same the other way."""
        mine, theirs = await asyncio.gather(self.hides.hides(account_id, target_id),
                                            self.hides.hides(target_id, account_id))
        unwanted = bool(mine) or BLOCK in theirs
        unwanted_back = bool(theirs) or BLOCK in mine
        await self.redis.publish(keys.HIDES_CHANNEL, f"{account_id}:{target_id}:{unwanted:d}:{unwanted_back:d}")

    # Lists (kicau/lists.py) --------------------------------------------------------------------------------

    async def own_list(self, account_id: int, list_id: int) -> AccountList:
        """The account's list ``list_id``; 404 for none of its own."""
        found = await self.lists.one(account_id, list_id)
        if found is None:
            raise ApiError(404, "Record not found")
        return found

    async def create_list(self, account_id: int, *, title: str, replies_policy: str | None,
                          exclusive: bool | None) -> dict[str, Any]:
        """A new list (a repeated request makes another, as on Mastodon); 422 for a blank title or a list past
        ``MAX_LISTS``."""
        if len(await self.lists.of_owner(account_id)) >= MAX_LISTS:
            raise ApiError(422, f"Validation failed: You cannot have more than {MAX_LISTS} lists")
        made = AccountList(self.ids.next_id(), account_id, _list_title(title),
                           replies_policy or DEFAULT_REPLIES_POLICY, bool(exclusive))
        await self.lists.save(made)
        return made.entity()

    async def update_list(self, account_id: int, list_id: int, *, title: str | None, replies_policy: str | None,
                          exclusive: bool | None) -> dict[str, Any]:
        """Change a list's title, replies policy or exclusiveness (those given). Its members' copies for the fanout
        (exclusiveness and replies policy, ``member_lists``) change between two drops of their follower list
        versions; made exclusive (or not), the owner's home reads see its large members again."""
        current = await self.own_list(account_id, list_id)
        changed = replace(current, title=current.title if title is None else _list_title(title),
                          replies_policy=replies_policy or current.replies_policy,
                          exclusive=current.exclusive if exclusive is None else exclusive)
        exclusive_changed = changed.exclusive != current.exclusive
        if exclusive_changed or changed.replies_policy != current.replies_policy:
            members = await self.lists.members(list_id)
            await follower_lists.forget(self.redis, *members)
            if exclusive_changed:
                await resp.round_trip(self.redis, followee_changes(account_id))
            # The members' rows before the list's own: a retry after a crash in between still finds the change
            # to make, and makes it whole.
            await asyncio.gather(*(self.lists.add_member(changed, member) for member in members))
            crash_point("graph.list.members_restated")
            await self.lists.save(changed)
            await follower_lists.forget(self.redis, *members)
            if not exclusive_changed:
                return changed.entity()
            await resp.round_trip(self.redis, followee_changes(account_id))
            if changed.exclusive:
                await self._keep_out_of_home(account_id, members)
            else:
                await self._bring_back_home(account_id, members)
        elif changed != current:
            await self.lists.save(changed)
        return changed.entity()

    async def delete_list(self, account_id: int, list_id: int) -> None:
        """Delete a list: its memberships first, the list last, so a retry after a crash finds it and finishes."""
        found = await self.own_list(account_id, list_id)
        members = await self.lists.members(list_id)
        await self._unlist_members(found, members)
        await self.lists.drop(account_id, list_id)
        if found.exclusive:
            await self._bring_back_home(account_id, members)

    async def add_to_list(self, account_id: int, list_id: int, member_ids: list[int]) -> None:
        """Add accounts the owner follows to its list. Nothing is written unless all may be added: 404 for an
        account that is not there or that the owner does not follow, 422 for one already in the list or past
        ``MAX_MEMBERS``. A membership's rows are written again by a retry (a crash in between leaves the list's
        own row unwritten, so the account is not yet taken)."""
        found = await self.own_list(account_id, list_id)
        wanted = list(dict.fromkeys(member_ids))
        members, following = await asyncio.gather(
            self.lists.members(list_id),
            asyncio.gather(*(self.store.is_following(account_id, member) for member in wanted)))
        if not all(following):
            raise ApiError(404, "Record not found")
        if set(wanted) & set(members):
            raise ApiError(422, "Validation failed: Account has already been taken")
        if len(members) + len(wanted) > MAX_MEMBERS:
            raise ApiError(422, f"Validation failed: A list holds at most {MAX_MEMBERS} accounts")
        if not wanted:
            return
        await follower_lists.forget(self.redis, *wanted)
        await self._exclusive_members_change(found)
        await asyncio.gather(*(self.lists.add_member(found, member) for member in wanted))
        crash_point("graph.list.membered")
        await asyncio.gather(*(self.lists.list_member(list_id, member) for member in wanted))
        await follower_lists.forget(self.redis, *wanted)
        await self._list_changed(found)
        if found.exclusive:
            await self._keep_out_of_home(account_id, wanted)

    async def remove_from_list(self, account_id: int, list_id: int, member_ids: list[int]) -> None:
        """Take accounts out of the owner's list (those not in it: nothing changes)."""
        found = await self.own_list(account_id, list_id)
        members = list(dict.fromkeys(member_ids))
        await self._unlist_members(found, members)
        if found.exclusive:
            await self._bring_back_home(account_id, members)

    async def _unlist_members(self, found: AccountList, members: list[int]) -> None:
        if members:
            await follower_lists.forget(self.redis, *members)
            await self._exclusive_members_change(found)
            await asyncio.gather(*(self.lists.remove_member(found.owner_id, found.list_id, member)
                                   for member in members))
            crash_point("graph.list.unmembered")
            await asyncio.gather(*(self.lists.unlist_member(found.list_id, member) for member in members))
            await follower_lists.forget(self.redis, *members)
        await self._list_changed(found)

    async def _keep_out_of_home(self, owner_id: int, members: list[int]) -> None:
        """Members of an exclusive list: their statuses leave the owner's home timeline (``AccountHidden``), as a
        block's or mute's do; published on every call, retries included (removing what is gone changes nothing)."""
        for member in members:
            await publish(self.producer, self.settings.kafka_follows_topic,
                          AccountHidden(account_id=owner_id, target_id=member))

    async def _bring_back_home(self, owner_id: int, members: list[int]) -> None:
        """Accounts no longer in an exclusive list: the newest statuses of those the owner still follows and keeps
        in no other exclusive list come back to its home timeline (the follow's backfill, published again as an
        unmute does: it notifies no one, and leaves out what the owner blocks or mutes)."""
        still_apart = await self._kept_apart(owner_id, members)
        followed = await asyncio.gather(*(self.store.is_following(owner_id, m) for m in members))
        for member, following in zip(members, followed, strict=True):
            if following and member not in still_apart:
                await publish(self.producer, self.settings.kafka_follows_topic,
                              FollowCreated(follower_id=owner_id, followee_id=member))

    async def _kept_apart(self, owner_id: int, accounts: list[int]) -> set[int]:
        """Which of ``accounts`` the owner keeps in any of its exclusive lists."""
        exclusive = {found.list_id for found in await self.lists.of_owner(owner_id) if found.exclusive}
        if not exclusive:
            return set()
        holding = await asyncio.gather(*(self.lists.holding(owner_id, account) for account in accounts))
        return {account for account, lists in zip(accounts, holding, strict=True) if exclusive.intersection(lists)}

    async def _exclusive_members_change(self, changed: AccountList) -> None:
        """Before and after a change of an exclusive list's members: the owner's copy of its large followees
        (kicau/large_accounts.py), which leaves out the accounts such lists keep apart."""
        if changed.exclusive:
            await resp.round_trip(self.redis, followee_changes(changed.owner_id))

    async def _list_changed(self, changed: AccountList) -> None:
        """After a change of membership: the list's timeline goes (its next read rebuilds it from the members'
        statuses), and the owner's copy of its large followees changes when the list keeps members out of home."""
        await self.redis.delete(keys.list_feed(changed.list_id))
        await self._exclusive_members_change(changed)

    # Followed hashtags (kicau/tag_follows.py) ----------------------------------------------------------

    async def follow_tag(self, *, account_id: int, tag: str) -> None:
        """Follow a hashtag (in normal form; again: nothing changes). Its public statuses reach the account's
        home timeline and stream from the fanout's next batch on."""
        follow_id = await self.tag_follows.claim(account_id, tag, self.ids.next_id())
        crash_point("graph.tag_follow.claimed")
        # The fanout's copies of the hashtag's followers are dropped before and after the row changes (the
        # protocol in kicau/follower_lists.py).
        await follower_lists.forget_tags(self.redis, tag)
        await self.tag_follows.list_follow(account_id, tag, follow_id)
        await follower_lists.forget_tags(self.redis, tag)

    async def unfollow_tag(self, *, account_id: int, tag: str) -> None:
        """Stop following a hashtag (not followed: nothing changes). The claim goes last: with no claim, nothing
        the fanout reads is left."""
        follow_id = await self.tag_follows.follow_id(account_id, tag)
        if follow_id is None:
            return
        await follower_lists.forget_tags(self.redis, tag)
        await self.tag_follows.unlist_follow(account_id, tag, follow_id)
        await follower_lists.forget_tags(self.redis, tag)
        crash_point("graph.tag_unfollow.unlisted")
        await self.tag_follows.release(account_id, tag, follow_id)

    # Featured hashtags (kicau/featured_tags.py) ---------------------------------------------------------

    async def featured_tags(self, account_id: int) -> list[dict[str, Any]]:
        """The account's featured hashtags as FeaturedTags, most used first (as Mastodon orders them), then in
        the order featured; 404 for no account."""
        card = await self.cards.entity(account_id)
        if card is None:
            raise ApiError(404, "Record not found")
        featured = await self.featured.of_account(account_id)
        counts = await self.tag_uses.counts(account_id, [tag for _, tag in featured])
        entities = [featured_tags.entity(featured_id, tag, card["username"], self.settings.public_url, count, newest)
                    for (featured_id, tag), (count, newest) in zip(featured, counts, strict=True)]
        entities.sort(key=lambda e: -int(e["statuses_count"]))  # stable: the order featured breaks ties
        return entities

    async def feature_tag(self, account_id: int, name: str) -> dict[str, Any]:
        """Feature a hashtag on the account's profile (again: nothing changes); its FeaturedTag. 422 for a name
        that is no hashtag's, or an eleventh."""
        name = name.strip().removeprefix("#")
        if not hashtags.valid(name):
            raise ApiError(422, "Validation failed: Tag is invalid")
        tag = hashtags.normal(name)
        featured = await self.featured.of_account(account_id)
        featured_id = next((i for i, t in featured if t == tag), None)
        if featured_id is None:
            if len(featured) >= featured_tags.MAX_FEATURED:
                raise ApiError(422, f"Validation failed: You cannot feature more than "
                                    f"{featured_tags.MAX_FEATURED} hashtags")
            featured_id = await self.featured.feature(account_id, tag, self.ids.next_id())
        card = await self.cards.entity(account_id)
        (count, newest), = await self.tag_uses.counts(account_id, [tag])
        return featured_tags.entity(featured_id, tag, card["username"] if card else "", self.settings.public_url,
                                    count, newest)

    async def unfeature_tag(self, account_id: int, featured_id: int) -> None:
        """Stop featuring the account's featured hashtag ``featured_id``; 404 for none of its own."""
        tag = next((t for i, t in await self.featured.of_account(account_id) if i == featured_id), None)
        if tag is None:
            raise ApiError(404, "Record not found")
        await self.featured.unfeature(account_id, tag, featured_id)

    async def unfeature_tag_named(self, account_id: int, tag: str) -> None:
        """Stop featuring hashtag ``tag`` (in normal form); not featured: nothing changes."""
        featured_id = next((i for i, t in await self.featured.of_account(account_id) if t == tag), None)
        if featured_id is not None:
            await self.featured.unfeature(account_id, tag, featured_id)

    async def featured_tag_suggestions(self, account_id: int) -> list[dict[str, Any]]:
        """The hashtags the account used most recently and does not feature, as Tags (up to ten)."""
        featured = {tag for _, tag in await self.featured.of_account(account_id)}
        names = [tag for tag in await self.tag_uses.recent(account_id) if tag not in featured]
        names = names[:featured_tags.SUGGESTED]
        if not names:
            return []
        days = tag_history.history_days()
        counts, following = await asyncio.gather(tag_history.history_counts(self.redis, names, days),
                                                  self.tag_follows.followed_among(account_id, names))
        return [tag_history.entity(tag, self.settings.public_url, days, counts[i], following=tag in following,
                                   featuring=False) for i, tag in enumerate(names)]

    async def followers_among(self, *, account_id: int, candidates: list[int]) -> tuple[list[int], EncodedOptions]:
        """Which of ``candidates`` follow the account, and the options of their follows that are not the defaults
        (kicau/follow_options.py): a gateway applies them to the account's statuses when it is a large account."""
        followers = await self.store.followers_among(account_id, candidates)
        options = await self.follow_options.among(account_id, followers) if followers else {}
        return followers, encode_options(options)

    async def relationship(self, *, viewer_id: int, target_id: int) -> dict[str, Any]:
        following, followed_by, between, options, annotations, (requested, requested_by) = await asyncio.gather(
            self.store.is_following(viewer_id, target_id), self.store.is_following(target_id, viewer_id),
            self.hides.between(viewer_id, target_id), self.follow_options.of_follow(viewer_id, target_id),
            self.notes.annotations(viewer_id, target_id),
            asyncio.gather(self.requests.find(viewer_id, target_id), self.requests.find(target_id, viewer_id)))
        return relationship_entity(target_id, following=following, followed_by=followed_by, hiding=between,
                                   options=options, annotations=annotations, requested=requested is not None,
                                   requested_by=requested_by is not None)

    # The profile directory (kicau/directory.py) ---------------------------------------------------------------

    async def directory(self, *, order: str, offset: int, limit: int, viewer: int | None) -> list[dict[str, Any]]:
        """A page of the directory's accounts; for a viewer, less those it blocks or mutes and those that block
        it (the page may then hold fewer)."""
        found = await self.directory_index.page(order, offset, limit)
        if viewer is not None and found:
            hides, _ = await self.hides.hidden_from(viewer)
            found = [a for a in found if a not in hides.hidden and a not in hides.blockers]
        entities = await asyncio.gather(*(self.cards.entity(a) for a in found))
        return [e for e in entities if discoverable(e)]

    # Follow suggestions (kicau/follow_suggestions.py) --------------------------------------------------------

    async def suggestions(self, *, account_id: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` accounts to follow, each with its sources (Mastodon's Suggestion entity)."""
        friends = await self.store.following_page(account_id, (1 << 63) - 1, follow_suggestions.FRIENDS)
        friends_follows, popular, (hides, _), dismissed = await asyncio.gather(
            asyncio.gather(*(self.store.following_page(f, (1 << 63) - 1, follow_suggestions.FRIENDS_FOLLOWS)
                             for f in friends)),
            resp.round_trip(self.redis, [follow_suggestions.most_followed_command(4 * limit)]),
            self.hides.hidden_from(account_id), self.dismissals.dismissed(account_id))
        most_followed = [int(bytes(member)) for member in popular[0]]
        left_out = {account_id, *hides.hidden, *hides.blockers, *dismissed}
        found = follow_suggestions.ranked(friends_follows, most_followed, left_out, 4 * limit)
        followed = await self.store.followees_among(account_id, [a for a, _ in found]) if found else set()
        chosen = [(a, sources) for a, sources in found if a not in followed][:limit]
        entities = await asyncio.gather(*(self.cards.entity(a) for a, _ in chosen))
        return [{"source": follow_suggestions.SOURCE[sources[0]], "sources": sources, "account": entity}
                for (_, sources), entity in zip(chosen, entities, strict=True)
                if discoverable(entity)]

    async def dismiss_suggestion(self, *, account_id: int, target_id: int) -> None:
        await self._require_account(target_id)
        await self.dismissals.dismiss(account_id, target_id)

    # Notes and endorsements (kicau/account_notes.py) ---------------------------------------------------------

    async def save_note(self, *, account_id: int, target_id: int, comment: str) -> dict[str, Any]:
        """Set the account's private note on the target (empty: none); the Relationship."""
        await self._require_account(target_id)
        if len(comment) > MAX_NOTE_LENGTH:
            raise ApiError(422, f"Validation failed: Comment is too long (maximum is {MAX_NOTE_LENGTH} characters)")
        await self.notes.save_note(account_id, target_id, comment)
        return await self.relationship(viewer_id=account_id, target_id=target_id)

    async def endorse(self, *, account_id: int, target_id: int) -> dict[str, Any]:
        """Feature a followed account on the account's profile (again: nothing changes); the Relationship."""
        await self._require_account(target_id)
        if not await self.store.is_following(account_id, target_id):
            raise ApiError(422, "Validation failed: You must be already following the person you want to endorse")
        await self.notes.endorse(account_id, target_id, self.ids.next_id())
        return await self.relationship(viewer_id=account_id, target_id=target_id)

    async def unendorse(self, *, account_id: int, target_id: int) -> dict[str, Any]:
        await self._require_account(target_id)
        await self.notes.unendorse(account_id, target_id)
        return await self.relationship(viewer_id=account_id, target_id=target_id)

    async def endorsements(self, *, account_id: int, max_id: int | None, limit: int,
                           ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of the accounts the account endorses and still follows, most recently endorsed first, and the
        cursor of the next page (an endorsement id)."""
        await self._require_account(account_id)
        limit = max(1, min(limit, MAX_PAGE))
        found = await self.notes.endorsed(account_id, max_id, limit)
        followed = await self.store.followees_among(account_id, [target for _, target in found]) if found else set()
        entities = [e for e in [await self.cards.entity(t) for _, t in found if t in followed] if e is not None]
        return entities, found[-1][0] if len(found) == limit else None

    async def follow_list(
        self, *, account_id: int, direction: str, max_id: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of followers or followees, highest id first, and the cursor of the next page. Suspended accounts
        are left out (the page may then hold fewer), and a suspended account's lists are empty, as on Mastodon."""
        row = await self.store.account(account_id)
        if row is None:
            raise ApiError(404, "Record not found")
        if row.get("suspended_at") is not None:
            return [], None
        limit = max(1, min(limit, MAX_PAGE))
        cursor = max_id if max_id is not None else (1 << 63) - 1
        if direction == "followers":
            ids = await self.store.followers_page(account_id, cursor, limit)
        else:
            ids = await self.store.following_page(account_id, cursor, limit)
        entities = [e for e in [await self.cards.entity(i) for i in ids] if listed(e)]
        next_cursor = ids[-1] if len(ids) == limit else None
        return entities, next_cursor


def _profile_fields(given: list[Any]) -> list[tuple[str, str]]:
    """Profile fields as Mastodon keeps them: those with a name or a value, in order, at most
    ``MAX_PROFILE_FIELDS``, each side at most ``MAX_PROFILE_FIELD_CHARS`` characters (else a 422)."""
    kept = [(str(name).strip(), str(value).strip()) for name, value in given if str(name).strip() or str(value).strip()]
    if len(kept) > MAX_PROFILE_FIELDS:
        raise ApiError(422, f"Validation failed: Fields is too long (maximum is {MAX_PROFILE_FIELDS} fields)")
    if any(len(side) > MAX_PROFILE_FIELD_CHARS for pair in kept for side in pair):
        raise ApiError(422, f"Validation failed: a profile field's name and value are at most "
                            f"{MAX_PROFILE_FIELD_CHARS} characters each")
    return kept
