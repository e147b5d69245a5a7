"""The hosts a machine installs packages from, read from pip's and apt's configuration.

`atwill up` resolves them and keeps the public range clear of their addresses: pip and
apt must still work while the cloud runs.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

PIP_DEFAULTS = ("pypi.org", "files.pythonhosted.org")
PIP_KEYS = ("index-url", "extra-index-url", "proxy")
PIP_ENV = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_PROXY")
PROXY_ENV = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")
_APT_LIST = re.compile(r"^\s*deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(\S+)", re.MULTILINE)
_APT_URIS = re.compile(r"^\s*URIs:\s*(.+)$", re.MULTILINE | re.IGNORECASE)


def url_host(url: str) -> str | None:
    """The host of a network URL (None for file: URLs and garbage)."""
    try:
        parts = urlsplit(url.strip() if "://" in url else f"http://{url.strip()}")
    except ValueError:
        return None
    if parts.scheme not in ("http", "https", "socks5", "socks5h"):
        return None
    return parts.hostname or None


def pip_hosts(configs: Iterable[str], environ: Mapping[str, str]) -> set[str]:
    """Index and proxy hosts of pip's config files and environment (pypi.org by default)."""
    urls: list[str] = []
    index_set = False
    for text in configs:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(text)
        except configparser.Error:
            continue
        for section in parser.sections():
            for key in PIP_KEYS:
                value = parser.get(section, key, fallback="")
                urls += value.split()
                index_set |= key == "index-url" and bool(value.strip())
    for name in PIP_ENV:
        urls += environ.get(name, "").split()
    index_set |= bool(environ.get("PIP_INDEX_URL", "").strip())
    hosts = {h for h in map(url_host, urls) if h}
    return hosts if index_set else hosts | set(PIP_DEFAULTS)


def apt_hosts(sources: Iterable[str]) -> set[str]:
    """Hosts of the `deb` lines and deb822 `URIs:` fields of apt's sources."""
    urls: list[str] = []
    for text in sources:
        urls += _APT_LIST.findall(text)
        for line in _APT_URIS.findall(text):
            urls += line.split()
    return {h for h in map(url_host, urls) if h}


def proxy_hosts(environ: Mapping[str, str]) -> set[str]:
    """Hosts of the HTTP proxies both tools would go through."""
    return {h for h in (url_host(environ.get(n, "")) for n in PROXY_ENV if environ.get(n)) if h}
