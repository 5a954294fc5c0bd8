"""Several named storage locations: where pushes go and in which order reads look."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from moorage.storage.driver import StorageDriver, StorageError


class UnknownStorageLocationError(StorageError, KeyError):
    """A location name that this deployment does not configure."""


@dataclass(frozen=True, slots=True)
class StorageLocations:
    """Drivers by location name, in read-preference order; ``default`` receives pushes."""

    drivers: Mapping[str, StorageDriver]
    default: str

    def __post_init__(self) -> None:
        if self.default not in self.drivers:
            raise UnknownStorageLocationError(f"default location {self.default!r} not configured")

    @classmethod
    def single(cls, driver: StorageDriver, name: str = "local") -> StorageLocations:
        return cls({name: driver}, name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.drivers)

    @property
    def default_driver(self) -> StorageDriver:
        return self.drivers[self.default]

    def driver(self, name: str) -> StorageDriver:
        try:
            return self.drivers[name]
        except KeyError:
            raise UnknownStorageLocationError(f"storage location {name!r} not configured") from None

    def preferred(self, placements: Iterable[str]) -> tuple[str, StorageDriver] | None:
        """The first location, in preference order, among those holding the bytes."""
        return next(iter(self.holding(placements)), None)

    def holding(self, placements: Iterable[str]) -> list[tuple[str, StorageDriver]]:
        """The configured locations among ``placements``, in preference order."""
        held = set(placements)
        return [(name, driver) for name, driver in self.drivers.items() if name in held]
