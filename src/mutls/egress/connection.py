"""One app connection to the egress proxy: HTTP/1.1 in, the partner's mTLS call out.

The app speaks plain HTTP to ``127.0.0.1:7080/<route>/<path>?<query>`` with its ``app`` token.
Each request is checked against the worker's snapshot (token, route, environment: no database
on the request path), then sent over a pooled TLS connection whose context carries the route's
client certificate for that environment, with the route's headers and OAuth2 token. Bodies
stream both ways with flow control (a 100 MB upload or download is never held in memory);
``Expect: 100-continue``, chunked bodies and HEAD pass through.

Retries, and why only these: a request is sent again at most once, and only when its body (if
any) is still held (up to ``REPLAY_LIMIT``): when a *reused* pooled connection turns out to have
been closed by the partner before it answered (the usual keep-alive race), and when the partner
answers 401 on a route with OAuth2 (the token was revoked early; a fresh one is fetched).
Everything else the partner says passes through untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from mutls.accounts.tokens import hash_token, looks_like_token
from mutls.egress.http import partner_head, relocate, token_of
from mutls.egress.oauth2 import AccessToken
from mutls.egress.partner import PartnerConnection
from mutls.egress.snapshot import AppToken, EgressSnapshot, PartnerTarget
from mutls.errors import (
    AuthenticationRequired,
    EgressError,
    EnvironmentForbidden,
    EnvironmentValueMissing,
    InputTooLarge,
    InvalidArgument,
    InvalidToken,
    MutlsError,
    NotFound,
    OAuth2TokenFailed,
    PartnerConnectionClosed,
    PartnerError,
    PartnerTimeout,
    PermissionDenied,
    RouteForbidden,
    RouteNotFound,
    SecretExpired,
)
from mutls.proxy.http import json_response, request_path
from mutls.proxy.reading import RequestReading
from mutls.routing.egress_fields import ENVIRONMENT_NAME

if TYPE_CHECKING:
    from mutls.egress.worker import EgressWorker

__all__ = ["REPLAY_LIMIT", "AppConnection", "Exchange", "status_of"]

log = logging.getLogger("mutls.egress")

REPLAY_LIMIT = 64 * 1024
"""Bodies up to this size are kept until the answer starts, so the request can be sent again."""
_MAX_WAITING_BUFFER = 1024 * 1024


def status_of(error: MutlsError) -> int:
    """The HTTP status of an error the proxy answers itself (the partner's pass through)."""
    if isinstance(error, PartnerTimeout):
        return 504
    if isinstance(error, PartnerError):
        return 502
    if isinstance(error, AuthenticationRequired | InvalidToken):
        return 401
    if isinstance(error, PermissionDenied | EnvironmentForbidden):
        return 403
    if isinstance(error, EnvironmentValueMissing | SecretExpired | EgressError):
        return 422
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, InputTooLarge):
        return 413
    if isinstance(error, InvalidArgument):
        return 400
    return 500


class Exchange:
    """One request: its head, its body's progress, where it goes and what came back."""

    __slots__ = (
        "access_token",
        "attempts",
        "body_buffer",
        "body_bytes",
        "chunked",
        "close",
        "code",
        "dispatched",
        "environment",
        "headers",
        "keep_alive",
        "local",
        "method",
        "oauth2_hit",
        "partner",
        "path",
        "received_bytes",
        "replay",
        "replay_size",
        "request_done",
        "response_started",
        "retrying",
        "reused",
        "route_name",
        "sent_at",
        "started",
        "status",
        "target",
        "tls_cipher",
        "tls_version",
        "token",
        "upstream",
        "upstream_status",
    )

    def __init__(self, started: float) -> None:
        self.started = started
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.method = b""
        self.path = b""
        self.keep_alive = True
        self.chunked = False
        self.body_bytes = 0
        self.body_buffer: list[bytes] = []
        self.replay: list[bytes] | None = []
        self.replay_size = 0
        self.request_done = False
        self.dispatched = False
        self.local = False
        self.close = False
        self.upstream: PartnerConnection | None = None
        self.response_started = False
        self.retrying = False
        self.attempts = 0
        self.status = 0
        self.upstream_status: int | None = None
        self.code = ""
        self.sent_at = 0.0
        self.route_name = ""
        self.environment: str | None = None
        self.token: AppToken | None = None
        self.partner: PartnerTarget | None = None
        self.access_token: AccessToken | None = None
        self.oauth2_hit: bool | None = None
        self.reused: bool | None = None
        self.tls_version: str | None = None
        self.tls_cipher: str | None = None
        self.received_bytes = 0

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class AppConnection(RequestReading, asyncio.Protocol):
    worker: EgressWorker
    receiving: Exchange | None

    __slots__ = (
        "_token_memo",
        "client_ip",
        "close_when_idle",
        "closing",
        "last_activity",
        "loop",
        "parser",
        "queue",
        "receiving",
        "tasks",
        "transport",
        "worker",
    )

    def __init__(self, worker: EgressWorker) -> None:
        self.worker = worker
        self.loop = worker.loop
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self.parser = httptools.HttpRequestParser(self)
        self.receiving: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.start_reading()
        self.last_activity = self.loop.time()
        self.closing = False
        self.close_when_idle = False
        self.tasks: set[asyncio.Task[None]] = set()
        self._token_memo: tuple[EgressSnapshot, str, AppToken | None] | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)
        worker = self.worker
        if len(worker.connections) >= worker.settings.max_connections or worker.draining:
            worker.stats.rejected_connections += 1
            self.closing = True
            self.transport.abort()
            return
        worker.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if peer else ""

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.worker.connections.discard(self)
        for exchange in self.queue:
            if exchange.upstream is not None:
                exchange.upstream.abort()
                exchange.upstream = None
        self.queue.clear()
        for task in self.tasks:
            task.cancel()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_activity = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._pause_reading("upgrade")
            self.close_when_idle = True
        except httptools.HttpParserError:
            self._bad_request(self._too_large)

    def eof_received(self) -> bool:
        return bool(self.queue)

    # --- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.receiving = Exchange(self.loop.time())
        self.head_bytes = 0

    def on_headers_complete(self) -> None:
        exchange = self.receiving
        assert exchange is not None
        parser = self.parser
        exchange.method = parser.get_method()
        exchange.keep_alive = parser.should_keep_alive()
        for name, value in exchange.headers:
            if name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
                exchange.chunked = True
        self.queue.append(exchange)
        if len(self.queue) == 1:
            self._start(exchange)
        else:
            self._pause_reading("pipeline")

    def on_body(self, body: bytes) -> None:
        exchange = self.receiving
        assert exchange is not None
        exchange.body_bytes += len(body)
        if exchange.body_bytes > self.worker.settings.max_body_bytes:
            self._too_large = "body"
            raise InputTooLarge("request body too large")
        if exchange.local:
            return
        if exchange.replay is not None:
            exchange.replay_size += len(body)
            if exchange.replay_size > REPLAY_LIMIT:
                exchange.replay = None
            else:
                exchange.replay.append(body)
        upstream = exchange.upstream
        if exchange.dispatched and upstream is not None:
            if not exchange.retrying:
                upstream.write(b"%x\r\n%s\r\n" % (len(body), body) if exchange.chunked else body)
            return
        exchange.body_buffer.append(body)
        if sum(len(b) for b in exchange.body_buffer) > _MAX_WAITING_BUFFER:
            self._pause_reading("buffer")

    def on_message_complete(self) -> None:
        exchange = self.receiving
        assert exchange is not None
        exchange.request_done = True
        self.receiving = None
        upstream = exchange.upstream
        # (a retry sends the terminator with the replayed body)
        if (
            exchange.dispatched
            and upstream is not None
            and exchange.chunked
            and not exchange.retrying
        ):
            upstream.write(b"0\r\n\r\n")
        if exchange.local and exchange.response_started:
            self._finish(exchange)

    # --- the request -----------------------------------------------------------------------

    def _start(self, exchange: Exchange) -> None:
        try:
            target = self._resolve(exchange)
        except MutlsError as error:
            self._answer(exchange, error)
            return
        if isinstance(target, MutlsError):  # the snapshot's, shared: answered, never raised
            self._answer(exchange, target)
            return
        exchange.partner = target
        certificate = target.certificate
        if certificate is not None and certificate.not_after <= self.worker.now:
            if certificate.strict_expiry:
                self._answer(exchange, self.worker.expired(certificate))
                return
            self.worker.warn_expired(certificate)
        if target.oauth2 is None:
            connection = self.worker.pool.take_idle(target.endpoint)
            if connection is not None:
                self._dispatch(exchange, connection)
                return
        self._spawn(exchange, fresh=False)

    def _resolve(self, exchange: Exchange) -> PartnerTarget | MutlsError:
        """Who is calling, which route and environment: the partner target, or the error.

        An error the snapshot holds for the route's environment is returned, not raised: it is
        one object shared by every request, and each raise would add frames to its
        traceback."""
        worker = self.worker
        snapshot = worker.snapshot
        token = self._token(exchange, snapshot)
        exchange.token = token
        path = request_path(exchange.target)
        if path is None or path.count("/") < 1 or path == "/":
            raise InvalidArgument(
                f"expected /<route>/<path> without dot segments or backslashes; found "
                f"{exchange.target[:200].decode('latin-1')!r}",
                hint="call http://127.0.0.1:7080/ROUTE/path/on/the/partner",
            )
        raw_target = exchange.target
        slash = raw_target.find(b"/", 1)
        query = raw_target.find(b"?")
        end = len(raw_target) if query < 0 else query
        if 0 <= slash < end:
            name, rest = raw_target[1:slash], raw_target[slash:]
        else:
            name, rest = raw_target[1:end], b"/" + raw_target[end:]
        route_name = name.decode("latin-1")
        exchange.route_name = route_name[:64]
        exchange.path = rest  # for the request log, until the route's base path is known
        route = snapshot.routes.get((token.namespace, route_name))
        if route is None:
            raise RouteNotFound(
                f"expected an egress route named {route_name[:64]!r} for this token's owner; "
                "there is none",
                hint="list routes with `mutls egress route list`; the route is the first path "
                "segment: http://127.0.0.1:7080/ROUTE/...",
            )
        if route.allowed_tokens and token.id not in route.allowed_tokens:
            raise RouteForbidden(
                f"expected a token allowed on route {route.name!r}; token {token.name!r} is not",
                hint="add the token to the route's allowed_tokens "
                "(`mutls egress route update ROUTE --allow-token TOKEN`)",
            )
        wanted = exchange.header(b"x-mutls-environment")
        environment = wanted.decode("latin-1").strip() if wanted else token.default_environment
        if not ENVIRONMENT_NAME.fullmatch(environment):
            raise InvalidArgument(
                "expected X-Mutls-Environment to be an environment name like production or "
                f"sandbox; found {environment[:64]!r}"
            )
        exchange.environment = environment
        if token.environments and environment not in token.environments:
            allowed = ", ".join(sorted(token.environments))
            raise EnvironmentForbidden(
                f"expected one of this token's environments ({allowed}); found {environment!r}"
            )
        found = route.target(environment)
        if isinstance(found, MutlsError):
            return found
        base = found.base_path
        exchange.path = base + rest if base else rest
        return found

    def _token(self, exchange: Exchange, snapshot: EgressSnapshot) -> AppToken:
        """The app token the request carries, active now, or the error."""
        raw = token_of(exchange.headers)
        memo = self._token_memo
        if memo is not None and memo[0] is snapshot and memo[1] == raw:
            token: AppToken | None = memo[2]
        elif raw is None:
            raise AuthenticationRequired(
                "expected an app token in X-Mutls-Token (or Proxy-Authorization: Bearer); "
                "found none",
                hint="create one with `mutls token create --role app` and send it with every "
                "request",
            )
        else:
            token = snapshot.tokens.get(hash_token(raw)) if looks_like_token(raw) else None
            self._token_memo = (snapshot, raw, token)  # apps send one token per connection
        if (
            token is not None
            and token.expires_at is not None
            and token.expires_at <= self.worker.now
        ):
            token = None  # expired since the snapshot was loaded (reloads follow changes only)
        if token is None:
            raise InvalidToken(
                "expected an active app token; the token sent is unknown, revoked, expired or "
                "not an app token",
                hint="check the token with `mutls token list`; the egress proxy accepts app "
                "tokens only",
            )
        return token

    def _spawn(self, exchange: Exchange, *, fresh: bool) -> None:
        task = self.loop.create_task(self._prepare(exchange, fresh=fresh))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _prepare(self, exchange: Exchange, *, fresh: bool) -> None:
        """Fetch the OAuth2 token if the route has one, take or open a connection, send."""
        worker = self.worker
        target = exchange.partner
        assert target is not None
        connection: PartnerConnection | None = None
        try:
            if target.oauth2 is not None:
                exchange.access_token, exchange.oauth2_hit = await worker.access_token(target)
            if not fresh:
                connection = worker.pool.take_idle(target.endpoint)
            if connection is None:
                connection = await worker.pool.connect(
                    target.endpoint, sends_certificate=target.certificate is not None
                )
                worker.saw_partner(
                    connection, route=target.route_name, environment=target.environment
                )
        except MutlsError as error:
            if not self.closing:
                self._answer(exchange, error, close=not exchange.request_done)
            return
        if self.closing or exchange.local:
            connection.abort()
            return
        self._dispatch(exchange, connection)

    def _dispatch(self, exchange: Exchange, connection: PartnerConnection) -> None:
        target = exchange.partner
        assert target is not None
        exchange.attempts += 1
        exchange.upstream = connection
        exchange.dispatched = True
        exchange.retrying = False
        exchange.reused = connection.reused
        exchange.tls_version = connection.tls_version
        exchange.tls_cipher = connection.tls_cipher
        connection.begin(_Sink(self, exchange), head_only=exchange.method == b"HEAD")
        if self._write_paused:
            connection.pause_reading()  # the app has not taken the last answer yet
        token = exchange.access_token
        head = partner_head(
            exchange.method,
            exchange.path,
            exchange.headers,
            authority=target.authority,
            route_headers=target.headers,
            route_header_names=target.header_names,
            authorization=token.authorization.encode("latin-1") if token is not None else None,
            chunked=exchange.chunked,
        )
        if exchange.attempts > 1:
            assert exchange.replay is not None
            body = exchange.replay
        else:
            body = exchange.body_buffer
        exchange.body_buffer = []
        if exchange.chunked:
            parts = [head, *(b"%x\r\n%s\r\n" % (len(b), b) for b in body)]
            if exchange.request_done:
                parts.append(b"0\r\n\r\n")
            connection.write(b"".join(parts))
        else:
            connection.write(b"".join([head, *body]) if body else head)
        exchange.sent_at = self.loop.time()
        self._resume_reading("buffer")

    # --- answers ---------------------------------------------------------------------------

    def _answer(self, exchange: Exchange, error: MutlsError, *, close: bool = False) -> None:
        status = status_of(error)
        extra = [(b"X-Mutls-Error", error.code.encode("ascii"))]
        if status == 401:
            extra.append((b"WWW-Authenticate", b'Bearer realm="mutls egress"'))
        data = json_response(
            status,
            {"error": error.to_dict()},
            close=close or not exchange.keep_alive,
            extra_headers=extra,
        )
        exchange.local = True
        exchange.status, exchange.code = status, error.code
        exchange.close = close or not exchange.keep_alive
        exchange.body_buffer = []
        exchange.replay = None
        exchange.response_started = True
        self._send(data)
        if exchange.request_done or close:
            self._finish(exchange)

    def _send(self, data: bytes) -> None:
        if not self.closing and self.transport is not None:
            self.transport.write(data)

    def _finish(self, exchange: Exchange) -> None:
        if not self.queue or self.queue[0] is not exchange:
            return
        self.queue.popleft()
        self.worker.record(self, exchange)
        if exchange.close or (self.close_when_idle and not self.queue):
            self._close()
            return
        self._resume_reading("pipeline")
        if self.queue:
            self._start(self.queue[0])

    # --- partner events (through _Sink) ----------------------------------------------------

    def partner_head(self, exchange: Exchange, status: int) -> None:
        exchange.upstream_status = status
        target = exchange.partner
        if (
            status == 401
            and target is not None
            and target.oauth2 is not None
            and exchange.attempts == 1
            and exchange.replay is not None
            and exchange.access_token is not None
        ):
            exchange.retrying = True  # swallow this answer; retry with a fresh token
            return
        exchange.status = status
        exchange.code = "ok"
        exchange.response_started = True
        exchange.replay = None
        self.worker.stats.observe(exchange.route_name, self.loop.time() - exchange.sent_at)

    def partner_data(self, exchange: Exchange, data: bytes) -> None:
        if exchange.retrying:
            return
        exchange.received_bytes += len(data)
        self._send(data)

    def partner_done(self, exchange: Exchange, client_must_close: bool) -> None:
        exchange.upstream = None
        if exchange.retrying:
            target = exchange.partner
            token = exchange.access_token
            if target is not None and target.oauth2 is not None and token is not None:
                self.worker.invalidate_token(target, token)
            exchange.access_token = None
            exchange.dispatched = False
            if exchange.replay is None:  # the body grew past what is kept: it cannot go again
                self._answer(
                    exchange,
                    OAuth2TokenFailed(
                        "the partner refused the access token (401) and the request body was "
                        "too large to send again with a fresh one",
                        hint="retry the request; a fresh token is fetched for it",
                        reason="token_refused",
                    ),
                    close=not exchange.request_done,
                )
                return
            self.worker.stats.retries += 1
            self._spawn(exchange, fresh=False)
            return
        if client_must_close or not exchange.keep_alive or not exchange.request_done:
            exchange.close = True
        self._finish(exchange)

    def partner_failed(self, exchange: Exchange, connection: PartnerConnection) -> None:
        exchange.upstream = None
        if exchange.response_started:
            exchange.code = "partner_broken"
            exchange.close = True
            self.worker.record(self, exchange)
            if self.queue and self.queue[0] is exchange:
                self.queue.popleft()
            self._abort()
            return
        if connection.reused and exchange.replay is not None and exchange.attempts == 1:
            # The pooled connection was closed by the partner while idle: send it again once.
            exchange.dispatched = False
            exchange.retrying = False
            self.worker.stats.retries += 1
            self._spawn(exchange, fresh=True)
            return
        error = connection.failure or PartnerConnectionClosed(
            f"the partner {connection.server} closed the connection before answering",
            reason="closed_before_answer",
        )
        if not connection.reused and error.reason == "closed_after_handshake":
            task = self.loop.create_task(self._diagnose(exchange, connection, error))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        self._answer(exchange, error, close=not exchange.request_done)

    async def _diagnose(
        self, exchange: Exchange, connection: PartnerConnection, error: PartnerError
    ) -> None:
        """A fresh connection closed right after its handshake: ask once more, without a
        request, so the partner's TLS alert can be read (``PartnerPool.probe``)."""
        found = await self.worker.pool.probe(
            connection.endpoint, sends_certificate=connection.sends_certificate
        )
        if not self.closing:
            self._answer(exchange, found or error, close=not exchange.request_done)

    def partner_timed_out(self, exchange: Exchange, seconds: float) -> None:
        if exchange.upstream is not None:
            exchange.upstream.abort()
            exchange.upstream = None
        if exchange.response_started:
            self._abort()
            return
        self._answer(
            exchange,
            PartnerTimeout(
                f"the partner did not start answering within {seconds:g} s",
                hint="retry; if the partner is slow by design, raise the route's timeout_seconds",
                reason="response_timeout",
            ),
            close=True,
        )

    def finish_head(self, exchange: Exchange, head: bytes) -> bytes:
        """The partner's head for the app: a redirect into the route's target points back
        through the proxy (as nginx's ``proxy_redirect default``), and an expired certificate
        is flagged."""
        target = exchange.partner
        if target is None:
            return head
        head = relocate(  # unchanged unless a Location points into the target
            head,
            authority=target.authority,
            base_path=target.base_path,
            route=exchange.route_name.encode("latin-1"),
        )
        certificate = target.certificate
        if certificate is not None and certificate.not_after <= self.worker.now:
            warning = b"X-Mutls-Warning: certificate_expired; secret=%s\r\n" % (
                certificate.secret_name.encode("ascii", "replace")
            )
            return head[:-2] + warning + b"\r\n"
        return head

    # --- reading, closing ------------------------------------------------------------------

    def partner_paused(self, paused: bool) -> None:
        if paused:
            self._pause_reading("partner")
        else:
            self._resume_reading("partner")

    def _bad_request(self, too_large: str | None) -> None:
        settings = self.worker.settings
        error: MutlsError
        if too_large == "body":
            error = InputTooLarge(
                f"the request body is larger than this proxy accepts ({settings.max_body_bytes} "
                "bytes)",
                hint="send less; the limit is MUTLS_EGRESS_MAX_BODY_BYTES",
            )
        elif too_large == "head":
            error = InputTooLarge(
                f"the request head is larger than this proxy accepts "
                f"({settings.max_header_bytes} bytes)",
                hint="send fewer or shorter headers; the limit is MUTLS_EGRESS_MAX_HEADER_BYTES",
            )
        else:
            error = InvalidArgument(
                "expected an HTTP/1.1 request; the request could not be parsed",
                hint="check the request line and headers",
            )
        if self.queue and self.queue[-1].response_started:
            self._close()
            return
        exchange = self.receiving or Exchange(self.loop.time())
        for other in list(self.queue):
            if other is not exchange and other.upstream is not None:
                other.upstream.abort()
        self.queue.clear()
        self.queue.append(exchange)
        self._answer(exchange, error, close=True)

    def check_timeouts(self, now: float) -> None:
        """Called about once a second by the worker."""
        settings = self.worker.settings
        idle = now - self.last_activity
        if not self.queue:
            if self.receiving is not None and idle > settings.read_timeout:
                self._abort()
            elif self.receiving is None and idle > settings.idle_timeout:
                self._close()
            return
        head = self.queue[0]
        if head.dispatched and not head.response_started and head.request_done:
            limit = (head.partner.timeout if head.partner else None) or settings.timeout
            if now - head.sent_at > limit:
                self.partner_timed_out(head, limit)
        elif not head.request_done and idle > settings.read_timeout and not head.local:
            self._abort()

    def shutdown(self) -> None:
        if self.queue or self.receiving is not None:
            self.close_when_idle = True
        else:
            self._close()

    def _close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def _abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()


class _Sink:
    """Binds a partner connection's reports to one exchange."""

    __slots__ = ("connection", "exchange")

    def __init__(self, connection: AppConnection, exchange: Exchange) -> None:
        self.connection, self.exchange = connection, exchange

    def upstream_data(self, data: bytes) -> None:
        self.connection.partner_data(self.exchange, data)

    def upstream_head(self, status: int) -> None:
        self.connection.partner_head(self.exchange, status)

    def upstream_done(self, reusable: bool, client_must_close: bool) -> None:
        del reusable
        self.connection.partner_done(self.exchange, client_must_close)

    def closes_after(self) -> bool:
        connection = self.connection
        return not self.exchange.keep_alive or connection.close_when_idle or connection.closing

    def finish_head(self, head: bytes) -> bytes:
        return self.connection.finish_head(self.exchange, head)

    def upstream_failed(self, started: bool) -> None:
        del started
        upstream = self.exchange.upstream
        if upstream is None:
            return
        self.connection.partner_failed(self.exchange, upstream)

    def upstream_paused(self, paused: bool) -> None:
        self.connection.partner_paused(paused)
