"""The errors a template can raise, typed as Heat names them (heatclient shows the type)."""

from __future__ import annotations

from ..errors import BadRequest, NotFound


class StackValidationFailed(BadRequest):
    heat_type = "StackValidationFailed"


class InvalidTemplateVersion(BadRequest):
    heat_type = "InvalidTemplateVersion"


class UserParameterMissing(BadRequest):
    heat_type = "UserParameterMissing"


class UnknownUserParameter(BadRequest):
    heat_type = "UnknownUserParameter"


class ResourceTypeNotFound(StackValidationFailed):
    heat_type = "StackValidationFailed"


class StackNotFound(NotFound):
    heat_type = "EntityNotFound"


class InvalidTemplateReference(BadRequest):
    heat_type = "InvalidTemplateReference"


class CircularDependency(BadRequest):
    heat_type = "CircularDependencyException"
