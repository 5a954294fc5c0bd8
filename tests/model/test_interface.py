"""The model keeps the seed interface: all 36 methods, same names and parameters."""

from __future__ import annotations

import inspect

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


def test_the_interface_has_the_seed_methods_in_order() -> None:
    declared = [
        name
        for name, _ in inspect.getmembers(RegistryDataInterface, inspect.isfunction)
        if not name.startswith("_")
    ]
    assert len(SEED_METHODS) == 36
    assert sorted(declared) == sorted(SEED_METHODS)
    source_order = [n for n in RegistryDataInterface.__dict__ if n in SEED_METHODS]
    assert source_order == SEED_METHODS


def test_the_sql_model_implements_every_method_with_the_same_parameters() -> None:
    for name in SEED_METHODS:
        declared = inspect.signature(getattr(RegistryDataInterface, name))
        implemented = inspect.signature(getattr(SqlRegistryModel, name))
        assert list(implemented.parameters) == list(declared.parameters), name
        for param in declared.parameters.values():
            assert implemented.parameters[param.name].default == param.default, (name, param.name)
        assert getattr(RegistryDataInterface, name).__doc__, f"{name} has no docstring"
