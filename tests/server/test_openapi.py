"""The OpenAPI document: valid 3.1, and the same routes and methods as the route table, both ways;
with auth on or off, as the server is configured.

What each operation answers is checked against a real server by tests/server/test_schemathesis.py,
and that a client generator reads it cleanly by tests/server/test_openapi_generator.py.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from openapi_spec_validator import validate
from tornado.util import re_unescape
from tornado.web import RequestHandler, StaticFileHandler

from tornado_queue import validation
from tornado_queue.config import Settings
from tornado_queue.server import openapi
from tornado_queue.server.app import ROUTES, make_app
from tornado_queue.server.handlers.base import ApiHandler, route_template

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
