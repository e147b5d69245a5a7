"""The client side of X-Scope: an openstack CLI plugin that adds --os-scope (alias
--scope, default $OS_SCOPE) and sends its value as the X-Scope header of every request
made through keystoneauth (hence through openstacksdk and every OSC command).

    openstack --os-scope '{"image": "CloudTwo"}' image list
    OS_SCOPE='{"image": "CloudTwo"}' openstack server create ...
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

API_NAME = "atwill_scope"
API_VERSION_OPTION = "os_atwill_scope_api_version"
DEFAULT_API_VERSION = "1"
API_VERSIONS = ("1",)
HEADER = "X-Scope"

_scope: dict[str, str | None] = {"value": None}


def check_api_version(_version: str) -> bool:
    return True


def make_client(_instance: Any) -> None:
    """No client of its own: the plugin only adds a header to everyone else's."""
    return None


def checked(raw: str) -> str:
    """The scope, compacted; a value that is not a JSON object of strings is refused."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--os-scope {raw!r} is not JSON") from None
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise argparse.ArgumentTypeError(
            '--os-scope must be a JSON object like {"image": "CloudTwo"}')
    return json.dumps(data, separators=(",", ":"))


def install(raw: str | None) -> None:
    """Send raw (a JSON scope) as X-Scope on every keystoneauth request from now on."""
    from keystoneauth1 import session

    _scope["value"] = raw
    if getattr(session.Session.request, "_atwill_scope", False):
        return
    original = session.Session.request

    def request(self: Any, url: str, method: str, **kwargs: Any) -> Any:
        if _scope["value"]:
            headers = dict(kwargs.get("headers") or {})
            headers.setdefault(HEADER, _scope["value"])
            kwargs["headers"] = headers
        return original(self, url, method, **kwargs)

    request._atwill_scope = True  # type: ignore[attr-defined]
    session.Session.request = request  # type: ignore[method-assign]


class ScopeAction(argparse.Action):
    def __call__(self, parser: Any, namespace: Any, values: Any,
                 option_string: str | None = None) -> None:
        # Kept as a dict: openstack.config str.format()s every string option, and a JSON
        # string's braces would be read as format fields.
        setattr(namespace, self.dest, json.loads(values))
        install(values)


def build_option_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    env = os.environ.get("OS_SCOPE") or None
    if env:
        install(checked(env))
        # Consumed here: openstack.config reads every OS_* variable into the cloud's config
        # and str.format()s it, and the JSON's braces would be read as format fields.
        os.environ.pop("OS_SCOPE")
    parser.add_argument(
        "--os-scope", "--scope", metavar="<scope>", dest="os_scope", default=None,
        type=checked, action=ScopeAction,
        help='Which cloud serves each service, as JSON: {"image": "CloudTwo"} '
             "(Env: OS_SCOPE). Sent as the X-Scope header (atwill peer clouds).")
    return parser
