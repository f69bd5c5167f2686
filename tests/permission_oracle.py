"""The permission oracle shared by the filter tests: written from the Filter's
documentation (proto/ragd/v1/ragd.proto), independently of ragd's code."""
from ragd.domain import Document, Filter


def may_see(doc: Document, f: Filter) -> bool:
    """The permission oracle, written from the Filter's documentation (ragd.proto), not from the code."""
    if f.project_ids and doc.project_id not in f.project_ids:
        return False
    if f.types and doc.type not in f.types:
        return False
    if doc.is_private:
        allowed = (f.all_private or doc.project_id in f.private_project_ids
                   or (f.user_id != 0 and (doc.author_id == f.user_id or f.user_id in doc.viewer_ids)))
        if not allowed:
            return False
    if any(doc.metadata.get(k) != v for k, v in f.metadata_equals.items()):
        return False
    for r in f.metadata_ranges:
        try:
            x = float(doc.metadata[r.key])
        except (KeyError, ValueError):
            return False
        if (r.gte is not None and x < r.gte) or (r.lte is not None and x > r.lte):
            return False
    if f.updated_after_us is not None and doc.updated_at_us < f.updated_after_us:
        return False
    if f.updated_before_us is not None and doc.updated_at_us > f.updated_before_us:
        return False
    return doc.id not in f.exclude_ids
