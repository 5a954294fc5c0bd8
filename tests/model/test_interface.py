"""The model keeps the seed interface: all 36 methods, same names and parameters."""

from __future__ import annotations

import inspect
from typing import Protocol

import pytest

from moorage.model import interface
from moorage.model.interface import RegistryDataInterface
from moorage.model.sql import SqlRegistryModel

SEED_METHODS = [
    "find_matching_tag",
    "get_most_recent_tag",
    "lookup_repository",
    "get_manifest_for_tag",
    "lookup_manifest_by_digest",
    "get_legacy_images",
    "get_legacy_image",
    "create_manifest_label",
    "list_manifest_labels",
    "get_manifest_label",
    "delete_manifest_label",
    "list_repository_tags",
    "list_repository_tag_history",
    "get_repo_tag",
    "retarget_tag",
    "delete_tag",
    "change_repository_tag_expiration",
    "get_legacy_images_owned_by_tag",
    "get_security_status",
    "backfill_manifest_for_tag",
    "is_namespace_enabled",
    "list_manifest_layers",
    "lookup_derived_image",
    "lookup_or_create_derived_image",
    "get_derived_image_signature",
    "set_derived_image_signature",
    "delete_derived_image",
    "set_derived_image_size",
    "get_torrent_info",
    "set_torrent_info",
    "get_repo_blob_by_digest",
    "create_blob_upload",
    "lookup_blob_upload",
    "update_blob_upload",
    "delete_blob_upload",
    "commit_blob_upload",
]


def _declared(protocol: type) -> list[str]:
    return [
        name
        for name, _ in inspect.getmembers(protocol, inspect.isfunction)
        if not name.startswith("_")
    ]


def test_the_interface_has_the_seed_methods_each_in_one_part() -> None:
    assert len(SEED_METHODS) == 36
    assert sorted(_declared(RegistryDataInterface)) == sorted(SEED_METHODS)
    parts = [base for base in RegistryDataInterface.__bases__ if base is not Protocol]
    owners = [part.__name__ for part in parts for name in vars(part) if name in SEED_METHODS]
    assert len(owners) == 36  # no method declared twice


PROTOCOLS = [getattr(interface, name) for name in interface.__all__]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
def test_every_method_of_every_protocol_is_documented_and_implemented(protocol: type) -> None:
    for name in _declared(protocol):
        declared = getattr(protocol, name)
        assert declared.__doc__, f"{protocol.__name__}.{name} has no docstring"
        implemented = inspect.signature(getattr(SqlRegistryModel, name))
        assert list(implemented.parameters) == list(inspect.signature(declared).parameters), name


def test_the_sql_model_implements_every_method_with_the_same_parameters() -> None:
    for name in SEED_METHODS:
        declared = inspect.signature(getattr(RegistryDataInterface, name))
        implemented = inspect.signature(getattr(SqlRegistryModel, name))
        assert list(implemented.parameters) == list(declared.parameters), name
        for param in declared.parameters.values():
            assert implemented.parameters[param.name].default == param.default, (name, param.name)
        assert getattr(RegistryDataInterface, name).__doc__, f"{name} has no docstring"
