"""The controller's shared objects: settings, database and token keys."""

from __future__ import annotations

import dataclasses

from ..config import Settings
from .db.session import Database
from .identity.token_cache import TokenCache
from .keys import KeyRepository


@dataclasses.dataclass
class Controller:
    settings: Settings
    db: Database
    keys: KeyRepository
    tokens: TokenCache = dataclasses.field(default_factory=TokenCache)

    @classmethod
    def from_settings(cls, settings: Settings) -> Controller:
        return cls(
            settings=settings,
            db=Database(settings.effective_database_url),
            keys=KeyRepository(settings.path("fernet-keys"), settings.max_active_keys),
        )

    @property
    def base_url(self) -> str:
        return self.settings.public_url
