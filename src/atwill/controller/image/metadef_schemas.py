"""/v2/schemas/metadefs/*: the JSON schemas of Glance's metadata definitions.

atwill does not store metadata definitions (no /v2/metadefs routes), but Glance
serves these schemas whether or not any definition exists, and clients and
Tempest read them by name. They have Glance's shape: a named object schema
without additional properties, its required attributes and definitions, and the
collection schemas (a list, or for properties a dict keyed by property name).
"""

from __future__ import annotations

import copy
from typing import Any

TYPES = ["array", "boolean", "integer", "number", "object", "string", None]
STRING_ARRAY = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}


def _string(max_length: int | None = None) -> dict[str, Any]:
    return {"type": "string", **({"maxLength": max_length} if max_length else {})}


def _stamp() -> dict[str, Any]:
    return {"type": "string", "readOnly": True, "format": "date-time"}


def _read_only() -> dict[str, Any]:
    return {"type": "string", "readOnly": True}


# What one property definition may say (JSON-schema keywords for a metadata value).
PROPERTY_FIELDS: dict[str, Any] = {
    "name": _string(80), "title": _string(), "description": _string(),
    "operators": {"type": "array", "items": {"type": "string"}},
    "type": {"type": "string", "enum": TYPES},
    "required": {"$ref": "#/definitions/stringArray"},
    "minimum": {"type": "number"}, "maximum": {"type": "number"},
    "maxLength": {"$ref": "#/definitions/positiveInteger"},
    "minLength": {"$ref": "#/definitions/positiveIntegerDefault0"},
    "pattern": {"type": "string", "format": "regex"},
    "enum": {"type": "array"}, "readonly": {"type": "boolean"}, "default": {},
    "items": {"type": "object", "properties": {"type": {"type": "string", "enum": TYPES},
                                               "enum": {"type": "array"}}},
    "maxItems": {"$ref": "#/definitions/positiveInteger"},
    "minItems": {"$ref": "#/definitions/positiveIntegerDefault0"},
    "uniqueItems": {"type": "boolean", "default": False},
    "additionalItems": {"type": "boolean"},
}
DEFINITIONS: dict[str, Any] = {
    "positiveInteger": {"type": "integer", "minimum": 0},
    "positiveIntegerDefault0": {"allOf": [{"$ref": "#/definitions/positiveInteger"},
                                          {"default": 0}]},
    "stringArray": STRING_ARRAY,
    "property": {"type": "object", "additionalProperties": {
        "type": "object", "required": ["title", "type"], "properties": PROPERTY_FIELDS}},
}
# A property's own definitions: its 'required' lists at least one name.
PROPERTY_DEFINITIONS: dict[str, Any] = {
    key: DEFINITIONS[key] for key in ("positiveInteger", "positiveIntegerDefault0")
} | {"stringArray": {**STRING_ARRAY, "minItems": 1}}

RESOURCE_TYPE_FIELDS: dict[str, Any] = {
    "name": _string(80), "prefix": _string(80), "properties_target": _string(80),
    "created_at": _stamp(), "updated_at": _stamp(),
}
NAMESPACE_FIELDS: dict[str, Any] = {
    "namespace": _string(80), "display_name": _string(80), "description": _string(500),
    "visibility": {"type": "string", "enum": ["public", "private"]},
    "protected": {"type": "boolean"}, "owner": _string(255),
    "created_at": _stamp(), "updated_at": _stamp(),
    "schema": _read_only(), "self": _read_only(),
    "resource_type_associations": {"type": "array", "items": {
        "type": "object", "properties": {k: {"type": "string"} for k in
                                         ("name", "prefix", "properties_target")}}},
    "properties": {"$ref": "#/definitions/property"},
    "objects": {"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string"}, "description": {"type": "string"},
        "required": {"$ref": "#/definitions/stringArray"},
        "properties": {"$ref": "#/definitions/property"}}}},
    "tags": {"type": "array", "items": {"type": "object",
                                        "properties": {"name": {"type": "string"}}}},
}
OBJECT_FIELDS: dict[str, Any] = {
    "name": _string(255), "description": _string(),
    "required": {"$ref": "#/definitions/stringArray"},
    "properties": {"$ref": "#/definitions/property"},
    "schema": _read_only(), "self": _read_only(),
    "created_at": _stamp(), "updated_at": _stamp(),
}
TAG_FIELDS: dict[str, Any] = {"name": _string(255), "created_at": _stamp(),
                              "updated_at": _stamp()}
LINKS = [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
         {"rel": "describedby", "href": "{schema}"}]


def item(name: str, fields: dict[str, Any], required: list[str],
         definitions: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "properties": copy.deepcopy(fields),
                           "additionalProperties": False}
    if definitions:
        out["definitions"] = copy.deepcopy(definitions)
    if required:
        out["required"] = required
    return out


def collection(name: str, member: dict[str, Any], keyed: bool = False) -> dict[str, Any]:
    """A list of members (a dict keyed by name if keyed); definitions move to the top."""
    member = dict(member)
    definitions = member.pop("definitions", None)
    items = ({"type": "object", "additionalProperties": member} if keyed
             else {"type": "array", "items": member})
    out: dict[str, Any] = {"name": name, "properties": {
        name: items, "first": {"type": "string"}, "next": {"type": "string"},
        "schema": {"type": "string"}}, "links": copy.deepcopy(LINKS)}
    if definitions:
        out["definitions"] = definitions
    return out


def schemas() -> dict[str, dict[str, Any]]:
    """Every metadefs schema by the name it is served under (metadefs/<name>)."""
    namespace = item("namespace", NAMESPACE_FIELDS, ["namespace"], DEFINITIONS)
    resource_type = item("resource_type_association", RESOURCE_TYPE_FIELDS, ["name"])
    obj = item("object", OBJECT_FIELDS, ["name"], DEFINITIONS)
    prop = item("property", PROPERTY_FIELDS, ["type", "title", "name"], PROPERTY_DEFINITIONS)
    # Inside the properties collection the name is the key, not a required attribute.
    keyed_prop = item("property", PROPERTY_FIELDS, ["type", "title"], PROPERTY_DEFINITIONS)
    tag = item("tag", TAG_FIELDS, ["name"])
    return {
        "namespace": namespace, "namespaces": collection("namespaces", namespace),
        "resource_type": resource_type,
        "resource_types": collection("resource_type_associations", resource_type),
        "object": obj, "objects": collection("objects", obj),
        "property": prop, "properties": collection("properties", keyed_prop, keyed=True),
        "tag": tag, "tags": collection("tags", tag),
    }


SCHEMAS = schemas()
