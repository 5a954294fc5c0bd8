"""The registry data model: the seed's RegistryDataInterface and its SQL implementation."""
