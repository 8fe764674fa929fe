"""Bearer tokens: the token table, the tokens file, the flags, and the open-API warning."""

from __future__ import annotations

import hmac
import logging
import re
from pathlib import Path

import pytest

from tests.server.handlers.test_auth import PROTECTED
from tornado_queue.config import Settings
from tornado_queue.server import auth, openapi, serve
from tornado_queue.server.app import ROUTES
from tornado_queue.server.auth import Role, TokenError, Tokens, bearer_token
from tornado_queue.server.handlers.base import ApiHandler, route_template

ADMIN_TOKEN = "admin-token-0123456789"
PRODUCER_TOKEN = "producer-token-0123456789"
CONSUMER_TOKEN = "consumer-token-0123456789"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens"
    path.write_text(text)
    return path


def test_an_auth_token_alone_is_one_admin_token():
    tokens = Tokens.configured(ADMIN_TOKEN, "")

    assert tokens.enabled
    assert len(tokens) == 1
    principal = tokens.identify(ADMIN_TOKEN)
    assert principal is not None
    assert principal.role is Role.ADMIN
    assert tokens.identify(ADMIN_TOKEN + "x") is None


def test_no_token_configured_means_auth_is_off():
    assert not Tokens.configured("", "").enabled


def test_a_tokens_file_maps_each_token_to_its_role_skipping_comments_and_blanks(tmp_path):
    path = write(
        tmp_path,
        f"# who may do what\n\nproducer {PRODUCER_TOKEN}\n  consumer\t{CONSUMER_TOKEN}  \n",
    )

    tokens = Tokens.configured(ADMIN_TOKEN, str(path))

    assert len(tokens) == 3
    roles = {token: tokens.identify(token) for token in (PRODUCER_TOKEN, CONSUMER_TOKEN)}
    assert roles[PRODUCER_TOKEN].role is Role.PRODUCER
    assert roles[CONSUMER_TOKEN].role is Role.CONSUMER
    assert tokens.identify(ADMIN_TOKEN).role is Role.ADMIN


def test_the_principal_names_its_token_by_a_short_id_never_the_token():
    principal = Tokens.configured(ADMIN_TOKEN, "").identify(ADMIN_TOKEN)

    assert len(principal.token_id) == 8
    assert principal.token_id not in ADMIN_TOKEN
    assert ADMIN_TOKEN not in repr(principal)


BAD_FILES = [
    (f"producer {PRODUCER_TOKEN} extra", "line 1: expected 'role token' (two fields), got 3"),
    (f"# ok\nreader {PRODUCER_TOKEN}", "line 2: the role must be one of"),
    ("admin short-token", "line 1: a token must be 16 to 512 characters"),
    ("admin bad\u00e9token-0123456789", "line 1: a token may hold only"),
    (
        f"producer {PRODUCER_TOKEN}\n\nconsumer {PRODUCER_TOKEN}",
        "line 3: the same token as line 1",
    ),
    ("# nothing but a comment\n", "holds no token"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_tokens_file_is_refused_naming_the_line_never_the_token(tmp_path, text, message):
    path = write(tmp_path, text)

    with pytest.raises(TokenError) as raised:
        Tokens.configured("", str(path))

    assert message in str(raised.value)
    assert str(path) in str(raised.value)
    for token in (PRODUCER_TOKEN, "short-token", "bad\u00e9token-0123456789"):
        assert token not in str(raised.value)


def test_a_missing_tokens_file_is_refused(tmp_path):
    with pytest.raises(TokenError, match="cannot read the tokens file"):
        Tokens.configured("", str(tmp_path / "absent"))


def test_a_file_may_not_give_the_auth_token_another_role(tmp_path):
    path = write(tmp_path, f"producer {ADMIN_TOKEN}\n")

    with pytest.raises(TokenError, match="line 1: this token is also --auth-token") as raised:
        Tokens.configured(ADMIN_TOKEN, str(path))

    assert ADMIN_TOKEN not in str(raised.value)


def test_the_server_refuses_to_start_on_a_bad_tokens_file_with_status_2(tmp_path, capsys):
    path = write(tmp_path, f"producer {PRODUCER_TOKEN}\nowner {CONSUMER_TOKEN}\n")

    assert serve.main(["--tokens-file", str(path)]) == 2

    err = capsys.readouterr().err
    assert "line 2: the role must be one of" in err
    assert len(err.strip().splitlines()) == 1
    assert CONSUMER_TOKEN not in err
    assert PRODUCER_TOKEN not in err


@pytest.mark.parametrize("source", ["flag", "env"])
def test_a_weak_auth_token_is_refused_without_printing_it(capsys, source):
    weak = "hunter2"
    argv, environ = (
        (["--auth-token", weak], {}) if source == "flag" else ([], {"TQ_AUTH_TOKEN": weak})
    )

    with pytest.raises(SystemExit) as exited:
        Settings.from_args(argv, environ=environ)

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "a token must be 16 to 512 characters" in err
    assert weak not in err


def test_the_tokens_come_from_the_flags_or_the_environment(tmp_path):
    path = write(tmp_path, f"consumer {CONSUMER_TOKEN}\n")

    from_flags = Settings.from_args(
        ["--auth-token", ADMIN_TOKEN, "--tokens-file", str(path)], environ={}
    )
    from_env = Settings.from_args(
        [], environ={"TQ_AUTH_TOKEN": ADMIN_TOKEN, "TQ_TOKENS_FILE": str(path)}
    )

    for settings in (from_flags, from_env):
        assert (settings.auth_token, settings.tokens_file) == (ADMIN_TOKEN, str(path))
        assert len(Tokens.configured(settings.auth_token, settings.tokens_file)) == 2
        assert ADMIN_TOKEN not in repr(settings)


def test_help_lists_the_auth_flags(capsys):
    with pytest.raises(SystemExit):
        Settings.from_args(["--help"], environ={})

    out = capsys.readouterr().out
    assert "--auth-token TOKEN" in out
    assert "TQ_AUTH_TOKEN" in out
    assert "--tokens-file FILE" in out
    assert "TQ_TOKENS_FILE" in out


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {ADMIN_TOKEN}", ADMIN_TOKEN),
        (f"bearer   {ADMIN_TOKEN} ", ADMIN_TOKEN),
        (f"Basic {ADMIN_TOKEN}", None),
        ("Bearer", None),
        ("Bearer ", None),
        (f"Bearer {ADMIN_TOKEN} extra", None),
        (None, None),
        ("", None),
    ],
)
def test_the_bearer_token_is_read_from_the_authorization_header(header, token):
    assert bearer_token(header) == token


def test_every_configured_token_is_compared_whatever_matches(tmp_path, monkeypatch):
    # Stopping at the first match would let the time taken tell which token matched.
    path = write(tmp_path, f"producer {PRODUCER_TOKEN}\nconsumer {CONSUMER_TOKEN}\n")
    tokens = Tokens.configured(ADMIN_TOKEN, str(path))
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)

    for presented in (ADMIN_TOKEN, CONSUMER_TOKEN, "not-a-token-at-all-0000"):
        calls.clear()
        tokens.identify(presented)
        assert len(calls) == 3


@pytest.mark.parametrize(
    ("host", "warned"),
    [("0.0.0.0", True), ("", True), ("example.org", True), ("127.0.0.1", False), ("::1", False)],
)
def test_an_open_api_on_a_non_loopback_host_is_warned_about_once(caplog, host, warned):
    caplog.set_level(logging.WARNING, logger="tornado_queue.lifecycle")

    auth.warn_if_open(Tokens(), host)
    auth.warn_if_open(Tokens.configured(ADMIN_TOKEN, ""), host)

    lines = [record for record in caplog.records if "is open to anyone" in record.getMessage()]
    assert len(lines) == (1 if warned else 0)


# A new route is admin-only by default; this keeps the HTTP table (and docs/security.md's) whole.
def test_the_http_table_covers_every_protected_route_and_method():
    tested = {
        (
            method,
            re.sub(
                r"/(queues/emails|schedules/nightly)\b",
                lambda match: "/" + match.group(1).split("/")[0] + "/{name}",
                re.sub(r"/tasks/[0-9a-f-]{36}", "/tasks/{id}", path.partition("?")[0]),
            ),
        ): set(roles)
        for method, path, roles in PROTECTED
    }
    protected = {
        (method, route_template(pattern)): {role.value for role in handler.roles_for(method)}
        for pattern, handler, *_ in ROUTES
        if issubclass(handler, ApiHandler)
        for method in handler.allowed_methods()
        if handler.roles_for(method) is not None
    }

    assert protected == tested


OPEN_OPERATIONS = {"/healthz", "/docs", "/openapi.json", "/"}


def test_with_auth_on_the_openapi_document_marks_exactly_the_protected_operations():
    document = openapi.document(ROUTES, auth=True)

    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        **document["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path in OPEN_OPERATIONS:
                assert "security" not in operation, (method, path)
                assert not {"401", "403"} & set(operation["responses"]), (method, path)
                continue
            assert operation["security"] == [{"bearerAuth": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
            assert "Roles: " in operation["description"], (method, path)
            assert operation["x-roles"], (method, path)
    unauthorized = document["components"]["responses"]["Unauthorized"]
    assert "WWW-Authenticate" in unauthorized["headers"]
