"""Per-profile container images: a local Debian base (no registry needed), builds from
``containers/`` through the Docker SDK, and distribution by registry push or tarball export."""
