"""Make this checkout importable and runnable as the collection pandorafms.server."""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS_ROOT = os.path.join(REPO, ".build", "collections")


def ensure_collection_link():
    """Create .build/collections/ansible_collections/pandorafms/server -> the repo."""
    ns_dir = os.path.join(COLLECTIONS_ROOT, "ansible_collections", "pandorafms")
    link = os.path.join(ns_dir, "server")
    os.makedirs(ns_dir, exist_ok=True)
    if not os.path.islink(link):
        if os.path.exists(link):
            raise RuntimeError("%s exists and is not a link" % link)
        os.symlink(os.path.relpath(REPO, ns_dir), link)
    if COLLECTIONS_ROOT not in sys.path:
        sys.path.insert(0, COLLECTIONS_ROOT)
    return COLLECTIONS_ROOT
