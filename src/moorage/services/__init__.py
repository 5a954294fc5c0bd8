"""What the registry does (uploads, manifests, tags, mounts, derived images, GC), over the
model and storage."""
