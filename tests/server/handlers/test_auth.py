"""Bearer tokens over HTTP: every route and every role, the open routes, and what a refused
request leaves behind (nothing)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.server.handlers.helpers import assert_json, assert_problem, request
from tornado_queue.config import Settings
from tornado_queue.models import TaskStatus
from tornado_queue.storage import MemoryStore

OWN_STORE = True  # the access check runs before any store call: one memory store, inline
pytestmark = pytest.mark.parametrize("store_calls", ["inline"], indirect=True)

TOKENS = {
    "admin": "admin-token-0123456789abcdef",
    "producer": "producer-token-0123456789abcdef",
    "consumer": "consumer-token-0123456789abcdef",
}
UNKNOWN_TOKEN = "someone-elses-token-0123456789"
ID = "00000000-0000-4000-8000-000000000000"
ALL = frozenset(TOKENS)

# Method, path, and the roles that may call it: the route x role table of docs/security.md.
PROTECTED = [
    ("POST", "/tasks", {"producer", "admin"}),
    ("POST", "/tasks/batch", {"producer", "admin"}),
    ("POST", "/tasks/dequeue", {"consumer", "admin"}),
    ("POST", "/tasks/dequeue/batch", {"consumer", "admin"}),
    ("POST", "/tasks/complete/batch", {"consumer", "admin"}),
    ("GET", f"/tasks/{ID}", ALL),
    ("HEAD", f"/tasks/{ID}", ALL),
    ("DELETE", f"/tasks/{ID}", {"admin"}),
    ("PUT", f"/tasks/{ID}/complete", {"consumer", "admin"}),
    ("PUT", f"/tasks/{ID}/fail", {"consumer", "admin"}),
    ("PUT", f"/tasks/{ID}/heartbeat", {"consumer", "admin"}),
    ("PUT", f"/tasks/{ID}/progress", {"consumer", "admin"}),
    ("POST", f"/tasks/{ID}/retry", {"admin"}),
    ("GET", "/queue/view", {"admin"}),
    ("HEAD", "/queue/view", {"admin"}),
    ("GET", "/queue/stats", {"admin"}),
    ("HEAD", "/queue/stats", {"admin"}),
    ("GET", "/queue/totals", {"admin"}),
    ("HEAD", "/queue/totals", {"admin"}),
    ("GET", "/queues", {"admin"}),
    ("HEAD", "/queues", {"admin"}),
    ("GET", "/queues/emails", {"admin"}),
    ("HEAD", "/queues/emails", {"admin"}),
    ("PATCH", "/queues/emails", {"admin"}),
    ("POST", "/queues/emails/retry", {"admin"}),
    ("DELETE", "/queues/emails/tasks", {"admin"}),
    ("POST", "/queues/emails/push/rotate-secret", {"admin"}),
    ("GET", "/schedules", {"admin"}),
    ("HEAD", "/schedules", {"admin"}),
    ("GET", "/schedules/nightly", {"admin"}),
    ("HEAD", "/schedules/nightly", {"admin"}),
    ("PUT", "/schedules/nightly", {"admin"}),
    ("DELETE", "/schedules/nightly", {"admin"}),
    ("GET", "/metrics", {"admin"}),
    ("HEAD", "/metrics", {"admin"}),
    ("GET", "/workers", {"admin"}),
    ("HEAD", "/workers", {"admin"}),
    # A bad queue, so that an allowed role gets its 400 instead of a stream that stays open.
    ("GET", "/events?queue=not%20a%20queue", {"admin"}),
]
OPEN = [
    "/healthz",
    "/docs",
    "/openapi.json",
    "/",
    "/dashboard/dashboard.js",
    "/dashboard/dashboard.css",
    "/docs/assets/swagger-ui.css",
    "/docs/static/swagger-init.js",
]


@pytest.fixture
def store(clock, policy) -> MemoryStore:
    return MemoryStore(policy, clock)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(
        f"producer {TOKENS['producer']}\nconsumer {TOKENS['consumer']}\n", encoding="utf-8"
    )
    return Settings(
        max_body_bytes=64 * 1024, auth_token=TOKENS["admin"], tokens_file=str(tokens_file)
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def as_role(role: str) -> dict[str, str]:
    return bearer(TOKENS[role])


def body_for(method: str, path: str) -> bytes | None:
    # A body the route would accept, so that an allowed role gets past validation too.
    if path == "/tasks":
        return b'{"payload": {"n": 1}}'
    if path == "/tasks/batch":
        return b'{"tasks": [{"payload": {"n": 1}}]}'
    if path == "/tasks/complete/batch":
        return b'{"items": []}'
    return None


def check_unauthorized(response, error: str | None) -> None:
    # A HEAD answer has no body to hold problem JSON; its status and header still tell.
    if response.request.method != "HEAD":
        problem = assert_problem(response, 401)
        assert "token" in problem["detail"]
    assert response.code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    if error:
        assert f'error="{error}"' in challenge


@pytest.mark.gen_test
@pytest.mark.parametrize(("method", "path", "allowed"), PROTECTED)
async def test_each_route_answers_exactly_the_roles_the_table_gives(
    http_client, base_url, method, path, allowed
):
    body = body_for(method, path)

    missing = await request(http_client, base_url, method, path, body)
    check_unauthorized(missing, None)

    wrong = await request(http_client, base_url, method, path, body, headers=bearer(UNKNOWN_TOKEN))
    check_unauthorized(wrong, "invalid_token")

    for role in sorted(TOKENS):
        response = await request(http_client, base_url, method, path, body, headers=as_role(role))
        if role in allowed:
            assert response.code not in (401, 403), (role, response.code, response.body)
        elif method == "HEAD":
            assert response.code == 403
        else:
            problem = assert_problem(response, 403)
            assert f"a {role} token may not {method}" in problem["detail"]
            assert "allowed roles: " in problem["detail"]
            assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


@pytest.mark.gen_test
@pytest.mark.parametrize("path", OPEN)
async def test_health_docs_and_the_dashboard_page_stay_open(http_client, base_url, path):
    response = await http_client.fetch(base_url + path, raise_error=False)

    assert response.code == 200, (path, response.body[:200])


@pytest.mark.gen_test
async def test_an_unknown_route_is_404_and_a_wrong_method_405_without_a_token(
    http_client, base_url
):
    # The route table is public (/openapi.json): these tell nothing the document does not.
    unknown = await request(http_client, base_url, "GET", "/nowhere")
    wrong_method = await request(http_client, base_url, "PATCH", "/tasks")

    assert_problem(unknown, 404)
    assert_problem(wrong_method, 405)
    assert wrong_method.headers["Allow"] == "POST"


@pytest.mark.gen_test
async def test_the_token_is_checked_before_the_body(http_client, base_url):
    too_large = b"x" * (128 * 1024)
    oversized = await request(http_client, base_url, "POST", "/tasks", too_large)
    not_json = await request(
        http_client, base_url, "POST", "/tasks", b"n=1", content_type="text/plain"
    )

    check_unauthorized(oversized, None)
    check_unauthorized(not_json, None)


@pytest.mark.gen_test
async def test_a_refused_request_changes_nothing(http_client, base_url, store):
    task = assert_json(
        await request(
            http_client, base_url, "POST", "/tasks", {"payload": {}}, headers=as_role("producer")
        ),
        201,
    )
    path = f"/tasks/{task['id']}"
    before = store.stats()

    refused = [
        await request(http_client, base_url, "POST", "/tasks", {"payload": {}}),
        await request(
            http_client, base_url, "POST", "/tasks", {"payload": {}}, headers=as_role("consumer")
        ),
        await request(http_client, base_url, "POST", "/tasks/dequeue", headers=as_role("producer")),
        await request(http_client, base_url, "DELETE", path, headers=as_role("producer")),
        await request(http_client, base_url, "DELETE", path, headers=as_role("consumer")),
        await request(http_client, base_url, "DELETE", path, headers=bearer(UNKNOWN_TOKEN)),
    ]

    assert [response.code for response in refused] == [401, 403, 403, 403, 403, 401]
    assert store.stats() == before
    assert store.get(task["id"]).status is TaskStatus.PENDING


@pytest.mark.gen_test
async def test_a_producer_enqueues_and_reads_its_task_but_cannot_dequeue_or_delete(
    http_client, base_url
):
    producer, consumer, admin = as_role("producer"), as_role("consumer"), as_role("admin")
    created = await request(
        http_client, base_url, "POST", "/tasks", {"payload": {"n": 1}}, headers=producer
    )
    task = assert_json(created, 201)
    path = f"/tasks/{task['id']}"

    assert assert_json(await request(http_client, base_url, "GET", path, headers=producer), 200)
    dequeue = await request(http_client, base_url, "POST", "/tasks/dequeue", headers=producer)
    assert "a producer token may not POST /tasks/dequeue" in assert_problem(dequeue, 403)["detail"]
    delete = await request(http_client, base_url, "DELETE", path, headers=producer)
    assert assert_problem(delete, 403)["detail"].endswith("allowed roles: admin")

    leased = assert_json(
        await request(http_client, base_url, "POST", "/tasks/dequeue", headers=consumer), 200
    )
    assert leased["id"] == task["id"]
    done = await request(
        http_client, base_url, "PUT", f"{path}/complete", {"result": 1}, headers=consumer
    )
    assert assert_json(done, 200)["status"] == "completed"
    assert (await request(http_client, base_url, "DELETE", path, headers=admin)).code == 204


@pytest.mark.gen_test
async def test_the_bearer_scheme_is_case_insensitive(http_client, base_url):
    response = await request(
        http_client,
        base_url,
        "GET",
        "/queue/stats",
        headers={"Authorization": f"bearer {TOKENS['admin']}"},
    )

    assert_json(response, 200)


@pytest.mark.gen_test
async def test_a_token_in_the_query_string_is_not_a_credential(http_client, base_url):
    response = await request(http_client, base_url, "GET", f"/queue/stats?token={TOKENS['admin']}")

    check_unauthorized(response, None)


@pytest.mark.gen_test
async def test_tokens_never_reach_the_logs(http_client, base_url, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = [*TOKENS.values(), UNKNOWN_TOKEN]

    for token in secrets:
        for path in ("/queue/stats", "/tasks/nope", "/nowhere", "/tasks/dequeue"):
            await request(http_client, base_url, "GET", path, headers=bearer(token))
            await request(http_client, base_url, "GET", f"{path}?token={token}")
            await request(
                http_client, base_url, "POST", f"{path}?token={token}", headers=bearer(token)
            )

    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "tornado.access" in {record.name for record in caplog.records}
    for token in secrets:
        assert token not in logged
