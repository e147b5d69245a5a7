"""The controller's shared objects: settings, database and token keys."""

from __future__ import annotations

import dataclasses

from ..config import Settings
from .db.session import Database
from .identity.token_cache import TokenCache
from .keys import KeyRepository
from .peers import seal


@dataclasses.dataclass
class Controller:
    settings: Settings
    db: Database
    keys: KeyRepository
    tokens: TokenCache = dataclasses.field(default_factory=TokenCache)

    @classmethod
    def from_settings(cls, settings: Settings) -> Controller:
        db = Database(settings.effective_database_url)
        # The keys live in the database, sealed with the cluster CA's key (keys.py).
        keys = KeyRepository(settings.path("fernet-keys"), settings.max_active_keys, db=db,
                             sealer=seal.of(settings, seal.TOKEN_KEYS))
        return cls(settings=settings, db=db, keys=keys)

    @property
    def base_url(self) -> str:
        """The URL links name: the load balancer's (public_endpoint) when set."""
        return self.settings.public_endpoint or self.settings.public_url
