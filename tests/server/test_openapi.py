"""The OpenAPI document: valid 3.1, and the same routes and methods as the route table, both ways;
with auth on or off, as the server is configured. Its schemas hold every field the server writes
(tasks, settings, totals) and every field and bound it checks (bodies, settings), tried against
`validation` at their edges.

What each operation answers is checked against a real server by tests/server/test_schemathesis.py,
and that a client generator reads it cleanly by tests/server/test_openapi_generator.py.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from tornado.util import re_unescape
from tornado.web import RequestHandler, StaticFileHandler

from tornado_queue import codec, limits, validation
from tornado_queue.config import Settings
from tornado_queue.errors import ValidationError
from tornado_queue.models import (
    LISTED,
    PURGEABLE,
    Event,
    PushTarget,
    QueueSettings,
    RateLimit,
    Task,
    TaskStatus,
)
from tornado_queue.server import openapi
from tornado_queue.server.app import ROUTES, make_app
from tornado_queue.server.handlers.base import ApiHandler, route_template
from tornado_queue.server.handlers.schedules import schedule_document

HTTP_METHODS = frozenset({"get", "head", "post", "put", "patch", "delete", "options", "trace"})
AUTH = pytest.mark.parametrize("auth", [True, False], ids=["auth-on", "auth-off"])
TOKEN = "openapi-admin-token-0123456789"


def api_routes() -> dict[str, type]:
    """Route template → handler, for every route but static files (which are not API)."""
    return {
        route_template(entry[0]): entry[1]
        for entry in ROUTES
        if not issubclass(entry[1], StaticFileHandler)
    }


def implemented_methods(handler: type) -> set[str]:
    """The methods a handler answers: `ApiHandler.allowed_methods`, or the same rule for a
    handler that is not an ApiHandler."""
    if hasattr(handler, "allowed_methods"):
        return {method.lower() for method in handler.allowed_methods()}
    return {
        method.lower()
        for method in handler.SUPPORTED_METHODS
        if getattr(handler, method.lower()) is not getattr(RequestHandler, method.lower())
    }


def operations(*, auth: bool = True) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in openapi.document(ROUTES, auth=auth)["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def resolved(response: dict[str, Any], *, auth: bool = True) -> dict[str, Any]:
    """A response, or the component response it refers to."""
    if "$ref" not in response:
        return response
    components = openapi.document(ROUTES, auth=auth)["components"]["responses"]
    return components[response["$ref"].rsplit("/", 1)[1]]


@AUTH
def test_the_document_is_valid_openapi_3_1(auth):
    document = openapi.document(ROUTES, auth=auth)

    validate(document)
    assert document["openapi"].startswith("3.1.")


@AUTH
def test_the_cached_bytes_are_the_document(auth):
    assert orjson.loads(openapi.document_bytes(ROUTES, auth=auth)) == openapi.document(
        ROUTES, auth=auth
    )


def test_without_the_keyword_the_document_is_the_one_with_auth_on():
    assert openapi.document(ROUTES) == openapi.document(ROUTES, auth=True)
    assert openapi.document_bytes(ROUTES) == openapi.document_bytes(ROUTES, auth=True)


@pytest.mark.parametrize("auth_token", [TOKEN, ""], ids=["auth-on", "auth-off"])
def test_the_app_serves_the_document_of_its_own_configuration(memory_store, auth_token):
    app = make_app(memory_store, Settings(auth_token=auth_token))

    assert app.services.openapi_document == openapi.document_bytes(ROUTES, auth=bool(auth_token))


def test_with_auth_off_no_operation_requires_a_token():
    document = openapi.document(ROUTES, auth=False)

    validate(document)
    assert "securitySchemes" not in document["components"]
    assert not {"Unauthorized", "Forbidden"} & set(document["components"]["responses"])
    assert "security" not in document
    handlers = {route_template(entry[0]): entry[1] for entry in ROUTES}
    for path, method, operation in operations(auth=False):
        assert "security" not in operation, (method, path)
        assert "x-roles" not in operation, (method, path)
        assert not {"401", "403"} & set(operation["responses"]), (method, path)
        handler = handlers[path]
        # The rate limit still counts the protected operations, by address.
        if issubclass(handler, ApiHandler) and handler.roles_for(method.upper()) is not None:
            assert "429" in operation["responses"], (method, path)
    assert "WWW-Authenticate" not in orjson.dumps(document).decode()


def test_every_api_route_is_documented_with_the_same_template():
    documented = set(openapi.document(ROUTES)["paths"])

    missing = sorted(set(api_routes()) - documented)

    assert not missing, f"routes missing from the document: {missing}"


def test_every_documented_path_is_a_route():
    routes = set(api_routes())

    extra = sorted(set(openapi.document(ROUTES)["paths"]) - routes)

    assert not extra, f"documented paths that are not routes: {extra}"


@pytest.mark.parametrize("template", sorted(api_routes()))
def test_each_route_documents_exactly_the_methods_its_handler_answers(template):
    handler = api_routes()[template]
    item = openapi.document(ROUTES)["paths"][template]

    assert set(item) & HTTP_METHODS == implemented_methods(handler)


def test_static_asset_routes_are_left_out():
    static = [entry[0] for entry in ROUTES if issubclass(entry[1], StaticFileHandler)]

    assert "/docs/assets/(.*)" in static
    for pattern in static:
        assert re_unescape(pattern) not in openapi.document(ROUTES)["paths"]


def test_operation_ids_are_unique():
    ids = [operation["operationId"] for _, _, operation in operations()]

    assert len(ids) == len(set(ids))


def test_path_parameters_are_declared_where_the_template_has_them():
    parameters = openapi.document(ROUTES)["components"]["parameters"]
    for path, method, operation in operations():
        names = {
            parameters[each["$ref"].rsplit("/", 1)[1]]["name"]
            for each in operation["parameters"]
            if parameters[each["$ref"].rsplit("/", 1)[1]]["in"] == "path"
        }
        assert names == set(re.findall(r"\{(\w+)\}", path)), (method, path)


@AUTH
def test_every_operation_carries_the_request_id_both_ways(auth):
    for path, method, operation in operations(auth=auth):
        assert {"$ref": "#/components/parameters/RequestId"} in operation["parameters"]
        for status, response in operation["responses"].items():
            headers = resolved(response, auth=auth)["headers"]
            assert "X-Request-ID" in headers, (method, path, status)


@AUTH
def test_errors_are_problem_json_and_successes_are_not(auth):
    for path, method, operation in operations(auth=auth):
        for status, response in operation["responses"].items():
            media_types = set(resolved(response, auth=auth).get("content", {}))
            if int(status) >= 400:
                assert media_types <= {"application/problem+json"}, (method, path, status)
                assert media_types or method == "head", (method, path, status)
            else:
                assert "application/problem+json" not in media_types


@AUTH
def test_errors_with_a_body_are_plain_references_to_one_problem_schema(auth):
    """No `allOf` or per-status `const`: client generators then read every error as the one
    Problem type instead of dropping the response."""
    responses = openapi.document(ROUTES, auth=auth)["components"]["responses"]
    for name, response in responses.items():
        assert response["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }, name
    for path, method, operation in operations(auth=auth):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            if method == "head":
                assert "content" not in response, (method, path, status)
            else:
                assert set(response) == {"$ref"}, (method, path, status)
                assert response["$ref"].startswith("#/components/responses/"), (method, path)


@AUTH
def test_a_head_operation_answers_as_its_get_without_bodies(auth):
    paths = openapi.document(ROUTES, auth=auth)["paths"]
    for path, item in paths.items():
        if "head" not in item:
            continue
        get, head = item["get"], item["head"]
        assert set(head["responses"]) == set(get["responses"]), path
        assert head["parameters"] == get["parameters"], path
        assert all("content" not in response for response in head["responses"].values())
        for status, response in head["responses"].items():
            assert (
                resolved(response, auth=auth)["headers"]
                == resolved(get["responses"][status], auth=auth)["headers"]
            ), (path, status)


def test_request_bodies_refuse_unknown_fields_like_the_server():
    schemas = openapi.document(ROUTES)["components"]["schemas"]
    expected = {
        "NewTask": validation.NEW_TASK_FIELDS,
        "Completion": validation.COMPLETE_FIELDS,
        "Failure": validation.FAIL_FIELDS,
        "Heartbeat": validation.HEARTBEAT_FIELDS,
        "NewTaskBatch": validation.BATCH_FIELDS,
        "CompletionBatch": validation.BATCH_FIELDS,
        "QueueSettingsPatch": validation.SETTINGS,
    }
    for name, fields in expected.items():
        assert schemas[name]["additionalProperties"] is False, name
        assert set(schemas[name]["properties"]) == fields, name
    batch_item = schemas["NewTaskBatch"]["properties"]["tasks"]["items"]
    assert set(batch_item["properties"]) == validation.BATCH_ITEM_FIELDS
    complete_item = schemas["CompletionBatch"]["properties"]["tasks"]["items"]
    assert set(complete_item["properties"]) == validation.COMPLETE_ITEM_FIELDS


@AUTH
def test_every_operation_on_the_store_documents_a_503_with_retry_after(auth):
    document = openapi.document(ROUTES, auth=auth)

    for path, methods in document["paths"].items():
        for method, operation_document in methods.items():
            responses = operation_document["responses"]
            if path in openapi.STORELESS_PATHS:
                assert "503" not in responses, (method, path)
                continue
            assert "503" in responses, (method, path)
            failure = responses["503"]
            if "$ref" in failure:
                failure = document["components"]["responses"][failure["$ref"].rsplit("/", 1)[1]]
            assert "Retry-After" in failure["headers"], (method, path)


def schema_validator(name: str) -> Draft202012Validator:
    """A JSON Schema validator for one component schema of the document, its references
    resolved within the document."""
    components = openapi.document(ROUTES)["components"]
    root = {"$ref": f"#/components/schemas/{name}", "components": components}
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


def full_task() -> Task:
    """A task with every optional field set, as a dead-lettered, expiring task of a group."""
    task = Task("63367020-82ad-4c9a-98fb-d9e46d42afb0", b'{"job":"charge"}', 1_800_000_000.25)
    task.status = TaskStatus.PENDING
    task.queue = "orders.dead"
    task.error = "card declined"
    task.group = "order-7"
    task.expires_at = 1_800_003_600.25
    task.dead_lettered_from = "orders"
    task.schedule = "nightly"
    task.fire_time = 1_799_999_940.0
    return task


def test_the_task_schema_has_every_field_the_server_writes_in_order():
    schema = openapi.document(ROUTES)["components"]["schemas"]["Task"]
    written = list(codec.task_document(full_task()))

    assert schema["required"] == written
    assert list(schema["properties"]) == written
    assert written[-8:] == [
        *("group", "expires_at", "dead_lettered_from", "after", "dependents"),
        *("schedule", "fire_time", "history"),
    ]


@pytest.mark.parametrize(
    "task", [full_task(), Task("0b8e3c1e-5d2a-4f5e-9a57-2f1f3c7d9e10", b"{}", 1_800_000_000.0)]
)
def test_a_task_as_the_server_writes_it_fits_the_task_schema(task):
    document = orjson.loads(codec.dumps(codec.task_document(task)))

    schema_validator("Task").validate(document)


def test_the_settings_schema_lists_every_setting_in_the_order_get_shows_them():
    schemas = openapi.document(ROUTES)["components"]["schemas"]

    assert schemas["QueueSettings"]["required"] == list(QueueSettings.NAMES)
    assert list(schemas["QueueSettings"]["properties"]) == list(QueueSettings.NAMES)
    assert set(schemas["QueueSettingsPatch"]["properties"]) == set(QueueSettings.NAMES)


SOME_SETTINGS = QueueSettings(
    paused=True,
    max_processing=limits.MAX_PROCESSING,
    rate_limit=RateLimit(limits.MAX_RATE_TASKS, 0.5),
    lease_seconds=limits.MAX_LEASE_SECONDS,
    max_attempts=limits.MAX_ATTEMPTS,
    retry_backoff=0.0,
    dead_letter_queue="orders.dead",
    ttl_seconds=limits.MIN_EXPIRY_SECONDS,
)


@pytest.mark.parametrize("settings", [QueueSettings(), SOME_SETTINGS], ids=["unset", "set"])
def test_settings_as_the_server_writes_them_fit_the_settings_schema(settings):
    document = orjson.loads(codec.dumps(settings.document()))

    schema_validator("QueueSettings").validate(document)
    schema_validator("QueueSettingsPatch").validate(document)


PUSH_TARGET = PushTarget(
    "https://receiver.internal/tasks",
    timeout_seconds=limits.MAX_PUSH_TIMEOUT_SECONDS,
    headers=(("Authorization", "Bearer receiver-token"), ("X-Team", "billing")),
    secret="whsec_ZbjsKVyXWqOAcRtnSpsmWgDqLhYZ0t7l",
)


def test_a_push_target_as_the_server_shows_it_fits_the_settings_schema():
    document = orjson.loads(codec.dumps(QueueSettings(push=PUSH_TARGET).document()))
    validator = schema_validator("QueueSettings")

    validator.validate(document)
    assert "secret" not in document["push"]
    # The answer of the PATCH that turned push on shows the secret, once.
    validator.validate({**document, "push": {**document["push"], "secret": PUSH_TARGET.secret}})
    assert not validator.is_valid({**document, "push": {**document["push"], "secret": "hunter2"}})


def test_a_patch_gives_push_without_what_the_server_adds_to_it():
    validator = schema_validator("QueueSettingsPatch")
    shown = QueueSettings(push=PUSH_TARGET).document()["push"]

    assert validator.is_valid({"push": {"url": PUSH_TARGET.url}})
    assert validator.is_valid({"push": None})
    assert validator.is_valid(
        {"push": {"url": PUSH_TARGET.url, "timeout_seconds": 1, "headers": {"X-A": "b c"}}}
    )
    # null is the default, as the server takes it: 30 s, no headers
    assert validator.is_valid(
        {"push": {"url": PUSH_TARGET.url, "timeout_seconds": None, "headers": None}}
    )
    assert not validator.is_valid({"push": shown})  # secret_rotated_at is the server's
    assert not validator.is_valid({"push": {"timeout_seconds": 30}})  # no url
    for timeout in (limits.MIN_PUSH_TIMEOUT_SECONDS - 0.001, limits.MAX_PUSH_TIMEOUT_SECONDS + 1):
        assert not validator.is_valid(
            {"push": {"url": PUSH_TARGET.url, "timeout_seconds": timeout}}
        )
    too_many = {f"X-H{index}": "v" for index in range(limits.MAX_PUSH_HEADERS + 1)}
    for headers in (too_many, {"Bad Name": "v"}, {"X-A": "tab\there"}, {"X-A": 1}):
        assert not validator.is_valid({"push": {"url": PUSH_TARGET.url, "headers": headers}})


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("https://receiver.internal/tasks", True),
        ("HTTP://10.0.0.5:81/", True),
        ("http://[::1]:8080/hook?attempt=1", True),
        ("https://receiver.internal", True),
        ("ftp://receiver.internal/", False),
        ("https://user:password@receiver.internal/", False),
        ("https://receiver.internal/tasks#part", False),
        ("https:///tasks", False),
        ("https://receiver.internal/" + "a" * limits.MAX_PUSH_URL_CHARS, False),
    ],
)
def test_a_push_url_is_http_or_https_with_a_host_and_no_credentials_or_fragment(url, valid):
    schema = openapi.SCHEMAS["PushTargetSettings"]["properties"]["url"]

    assert Draft202012Validator(schema).is_valid(url) is valid


def test_the_queue_document_has_push_status_and_a_rotation_answers_the_new_secret():
    schemas = openapi.document(ROUTES)["components"]["schemas"]
    status = {
        "in_flight": 2,
        "pushed": 40,
        "failed": 1,
        "last_success_at": codec.format_time(1_800_000_000.5),
        "last_error": "push answered 503: busy",
        "last_error_at": codec.format_time(1_799_999_999.25),
    }

    assert "push_status" in schemas["Queue"]["required"]
    assert schema_validator("PushStatus").is_valid(status)
    assert schema_validator("PushStatus").is_valid({**status, "last_error": None})
    assert schema_validator("PushSecret").is_valid(
        {
            "secret": "whsec_Ry5eng5PP983AfiNhP5NYTxUhVik95tW",
            "previous_secret_valid_until": codec.format_time(1_800_086_400.0),
        }
    )


def test_the_totals_schema_has_every_event_and_the_view_and_purge_their_states():
    document = openapi.document(ROUTES)
    totals = document["components"]["schemas"]["Totals"]
    parameters = document["components"]["parameters"]

    assert totals["required"] == [event.value for event in Event]
    assert parameters["ViewStatus"]["schema"]["enum"] == [status.value for status in LISTED]
    assert parameters["PurgeStatus"]["required"] is True
    assert parameters["PurgeStatus"]["schema"]["enum"] == [status.value for status in PURGEABLE]
    assert TaskStatus.PROCESSING.value not in parameters["PurgeStatus"]["schema"]["enum"]


def numeric_settings() -> list[str]:
    return [name for name, schema in openapi.SETTING_SCHEMAS.items() if "maximum" in schema]


def just_outside(schema: dict[str, Any]) -> tuple[float, float]:
    """The nearest values the schema refuses below and above its range."""
    step = 1 if "integer" in schema["type"] else 0.001
    return schema["minimum"] - step, schema["maximum"] + step


@pytest.mark.parametrize("name", numeric_settings())
def test_each_numeric_setting_is_bounded_as_the_server_checks_it(name):
    schema = openapi.SETTING_SCHEMAS[name]
    for inside in (schema["minimum"], schema["maximum"]):
        assert validation.queue_settings_changes({name: inside}, "orders") == {name: inside}
    for outside in just_outside(schema):
        with pytest.raises(ValidationError, match=name):
            validation.queue_settings_changes({name: outside}, "orders")


def test_the_rate_limit_is_bounded_as_the_server_checks_it():
    schema = openapi.document(ROUTES)["components"]["schemas"]["RateLimit"]
    tasks, seconds = schema["properties"]["tasks"], schema["properties"]["seconds"]
    validator = schema_validator("RateLimit")

    for good in (
        {"tasks": tasks["minimum"], "seconds": seconds["maximum"]},
        {"tasks": tasks["maximum"], "seconds": 0.001},
    ):
        assert validator.is_valid(good)
        validation.queue_settings_changes({"rate_limit": good}, "orders")
    for bad in (
        {"tasks": tasks["minimum"] - 1, "seconds": 1},
        {"tasks": tasks["maximum"] + 1, "seconds": 1},
        {"tasks": 1, "seconds": seconds["exclusiveMinimum"]},
        {"tasks": 1, "seconds": seconds["maximum"] + 0.001},
        {"tasks": 1},
        {"tasks": 1, "seconds": 1, "burst": 5},
    ):
        assert not validator.is_valid(bad), bad
        with pytest.raises(ValidationError, match="rate_limit"):
            validation.queue_settings_changes({"rate_limit": bad}, "orders")


def test_the_dead_letter_queue_is_a_queue_name():
    schema = openapi.SETTING_SCHEMAS["dead_letter_queue"]

    assert schema["pattern"] == openapi.QUEUE_NAME_PATTERN
    assert validation.queue_settings_changes({"dead_letter_queue": "orders.dead"}, "orders")
    with pytest.raises(ValidationError, match="dead_letter_queue"):
        validation.queue_settings_changes({"dead_letter_queue": "orders"}, "orders")


def new_task_field(name: str) -> dict[str, Any]:
    """The non-null schema of a field of the enqueue body."""
    schema = openapi.NEW_TASK_PROPERTIES[name]
    return next(each for each in schema.get("anyOf", [schema]) if each.get("type") != "null")


@pytest.mark.parametrize("item", [False, True], ids=["body", "batch-item"])
def test_expires_in_is_bounded_as_the_server_checks_it(item):
    schema = new_task_field("expires_in")

    def enqueue(value: object) -> object:
        body = {"payload": {}, "expires_in": value}
        if item:
            return validation.new_task_batch({"tasks": [body]})[0].expires_in
        return validation.new_task(body).expires_in

    assert schema["minimum"] == limits.MIN_EXPIRY_SECONDS
    assert schema["maximum"] == limits.MAX_EXPIRY_SECONDS
    for inside in (schema["minimum"], schema["maximum"]):
        assert enqueue(inside) == inside
    assert enqueue(None) is None
    for outside in just_outside(schema):
        with pytest.raises(ValidationError, match="expires_in"):
            enqueue(outside)


@pytest.mark.parametrize(
    ("group", "valid"),
    [
        ("order-7", True),
        ("x" * limits.MAX_GROUP_CHARS, True),
        ("ünïcode ✓", True),
        ("", False),
        ("x" * (limits.MAX_GROUP_CHARS + 1), False),
        ("tab\there", False),
        ("del\x7f", False),
    ],
)
def test_a_group_is_refused_by_the_document_exactly_when_the_server_refuses_it(group, valid):
    schema = new_task_field("group")
    body = {"payload": {}, "group": group}

    assert Draft202012Validator(schema).is_valid(group) is valid
    if valid:
        assert validation.new_task(body).group == group
    else:
        with pytest.raises(ValidationError, match="group"):
            validation.new_task(body)


def test_the_schedule_schema_has_every_field_the_server_writes_in_order():
    schedule = validation.schedule(
        {"queue": "reports", "payload": {"r": 1}, "cron": "0 6 * * *", "timezone": "Europe/Berlin"},
        "nightly",
    )
    stored = replace(schedule, next_run_at=1_800_000_000.0, last_run_at=1_799_913_600.0)
    document = orjson.loads(codec.dumps(schedule_document(stored)))
    schema = openapi.document(ROUTES)["components"]["schemas"]["Schedule"]

    assert schema["required"] == list(document)
    assert list(schema["properties"]) == list(document)
    schema_validator("Schedule").validate(document)
    schema_validator("Schedule").validate({**document, "next_run_at": None, "cron": None})


def test_every_definition_the_server_accepts_fits_the_definition_schema():
    validator = schema_validator("ScheduleDefinition")
    for body in (
        {"queue": "q", "payload": {}, "every": 1},
        {"queue": "q", "payload": {}, "cron": "*/5 * * * *", "timezone": "UTC", "paused": True},
        {"queue": "q", "payload": {}, "every": 60, "priority": -3, "max_attempts": 1000},
    ):
        validation.schedule(body, "s")
        validator.validate(body)
