"""The clouds of the generated clouds.yaml (docs/controllers.md, "The catalog and
clouds.yaml").

`atwill` is the cloud as clients should reach it: the load balancer's or DNS name's URL
(`public_endpoint`) when set, else this controller's own public URL (as with one
controller). When there is more than one way in (several controllers, or a public
endpoint), each controller also gets a cloud of its own, `atwill-<host>` (and
`-<port>` when two controllers share a host), authenticating there with the internal
interface: every controller answers the internal endpoints with its own URL
(core/catalog_rebase.py), so a client of that cloud keeps to that controller, whatever
the public endpoint is. keystoneauth fails over between nothing (it takes the first
matching endpoint of the catalog and never another): these named clouds are how an
operator picks, or pins, a controller.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

MAIN = "atwill"


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    return (parts.hostname or url), parts.port


def controller_names(urls: Iterable[str]) -> dict[str, str]:
    """URL -> cloud name, `atwill-<host>`, `atwill-<host>-<port>` where hosts repeat. A
    name is given once: a later URL whose name is taken (the same host and port with
    another scheme, or a host spelled like another's name) gets none, so it can never
    replace the cloud of a controller listed before it (skipped() names them)."""
    listed = list(dict.fromkeys(u.rstrip("/") for u in urls if u.strip()))
    hosts = [_host_port(u)[0] for u in listed]
    names: dict[str, str] = {}
    taken = {MAIN}
    for url, host in zip(listed, hosts, strict=True):
        port = _host_port(url)[1]
        name = f"{MAIN}-{host}"
        if hosts.count(host) > 1 and port is not None:
            name += f"-{port}"
        if name in taken:
            continue
        taken.add(name)
        names[url] = name
    return names


def skipped(own_url: str, controllers: Iterable[str]) -> list[str]:
    """The URLs clouds() gives no cloud of their own (their name was taken before)."""
    listed = _listed(own_url, controllers)
    names = controller_names(listed)
    return [u for u in listed if u not in names]


def _listed(own_url: str, controllers: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([own_url.rstrip("/"),
                               *(u.rstrip("/") for u in controllers if u.strip())]))


def clouds(base: dict[str, Any], own_url: str, controllers: Iterable[str],
           public_endpoint: str = "") -> dict[str, dict[str, Any]]:
    """The `clouds:` mapping. base is a cloud without auth.auth_url (the credentials,
    region, cacert; its interface is replaced, kept in its place); own_url this
    controller's public URL; controllers every controller URL it knows (its own among
    them or not; it comes first, then these in order: a name is never overwritten)."""
    urls = _listed(own_url, controllers)

    def cloud(url: str, interface: str) -> dict[str, Any]:
        out: dict[str, Any] = {"auth": {"auth_url": f"{url}/identity",
                                        **copy.deepcopy(base.get("auth", {}))}}
        out.update((k, copy.deepcopy(v)) for k, v in base.items() if k != "auth")
        out["interface"] = interface
        return out

    main = public_endpoint.rstrip("/") or own_url.rstrip("/")
    out = {MAIN: cloud(main, "public")}
    if len(urls) > 1 or public_endpoint:
        for url, name in controller_names(urls).items():
            out[name] = cloud(url, "internal")
    return out
