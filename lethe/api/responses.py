"""The error answers routes document, so every status a route can give is in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from lethe.api.schemas import Problem, ValidationProblem

Responses = dict[int | str, dict[str, Any]]

AUTH: Responses = {
    401: {"model": Problem, "description": "no bearer token, or not a valid one"},
    403: {"model": Problem, "description": "a valid token of another role"},
}
INVALID: Responses = {
    422: {"model": ValidationProblem, "description": "the request does not match the schema"}}
TOO_LARGE: Responses = {413: {"model": Problem, "description": "the body is over 1 MiB"}}
BAD_BODY: Responses = {400: {"model": Problem, "description": "the body cannot be read as UTF-8 JSON"}, **TOO_LARGE}
UNAVAILABLE: Responses = {
    503: {"model": Problem, "description": "Neo4j cannot be reached, or the server is misconfigured"}}
NO_REQUEST: Responses = {404: {"model": Problem, "description": "no erasure request with this id"}}
NOT_YET: Responses = {
    404: {"model": Problem, "description": "not there yet (the message says what comes first)"}}
NO_RUN_FILE: Responses = {
    404: {"model": Problem, "description": "no such request, or not built yet (the message says which)"}}
BAD_SIZE: Responses = {400: {"model": Problem, "description": "a tree size or index outside the log"}}
NO_DATASET: Responses = {404: {"model": Problem, "description": "no such dataset version"}}
JSON_DOCUMENT = {"application/json": {"schema": {"type": "object"}}}


def as_json(responses: Responses) -> Responses:
    """Error answers of a non-JSON route, documented as the JSON they are (not as the route's type)."""
    return {status: {"description": r["description"], "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{r['model'].__name__}"}}}}
            for status, r in responses.items()}
