"""Clerk's published OpenAPI spec (shared/clerk-openapi), read once, and validators from it.

The spec is OpenAPI 3.0.3: its schemas use `nullable`, which plain JSON Schema does not know;
openapi-schema-validator's OAS30 read validator does (and checks `readOnly` the reading way).
"""

from __future__ import annotations

import functools
from typing import Any

import yaml
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.services import SHARED

SPEC_PATH = SHARED / "clerk-openapi" / "backend-api-2026-05-12.yml"
SPEC_URI = "urn:clerk-backend-api-2026-05-12"


@functools.cache
def spec() -> dict[str, Any]:
    # The C safe loader (libyaml): the spec has 20,000 lines; the pure-Python one takes seconds.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open() as file:
        document: dict[str, Any] = yaml.load(file, Loader=loader)  # noqa: S506 (a safe loader)
    return document


@functools.cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(spec(), default_specification=DRAFT4)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return registry


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """`node`, or what its local `$ref` points at."""
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operation(path: str, method: str = "get") -> dict[str, Any]:
    found: dict[str, Any] = spec()["paths"][path][method]
    return found


def parameters(path: str, method: str = "get") -> dict[str, dict[str, Any]]:
    """The operation's parameters by name, `$ref`s resolved."""
    return {p["name"]: p for p in (resolve(raw) for raw in operation(path, method)["parameters"])}


def declared_statuses(path: str, method: str = "get") -> set[int]:
    return {int(status) for status in operation(path, method)["responses"]}


def response_schema(path: str, status: int, method: str = "get") -> dict[str, Any]:
    """The JSON schema of the operation's answer with `status`; KeyError if not declared."""
    response = resolve(operation(path, method)["responses"][str(status)])
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def component_response_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = resolve(spec()["components"]["responses"][name])["content"][
        "application/json"
    ]["schema"]
    return schema


def violations(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Every way `instance` breaks `schema` (empty when it conforms), with where."""
    rooted = _rooted(schema)
    validator = OAS30ReadValidator(
        rooted, registry=_registry(), format_checker=oas30_format_checker
    )
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def _rooted(node: Any) -> Any:
    """The schema with its local `$ref`s pointing into the registered spec document."""
    if isinstance(node, dict):
        return {
            key: (
                f"{SPEC_URI}{value}" if key == "$ref" and value.startswith("#") else _rooted(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rooted(item) for item in node]
    return node
