"""The permission oracles shared by the filter tests, written independently of
ragd's code:

- may_see(doc, filter): the Filter's rule as proto/ragd/v1/ragd.proto documents
  it, without grants (ragd 0.1) and with them (message Grant).
- redmine_visible(world, user, obj) (tests/redmine_world.py): Redmine 5's own
  rules (Issue#visible?, Journal.visible, User#allowed_to?), for the property test
  that builds grants from a Redmine world.
"""
from ragd.domain import Document, Filter, Visibility


def _passes_grant(doc: Document, g, user_id: int, principals: set[int]) -> bool:
    """Message Grant: "d passes grant g iff d.type in g.types, d.project_id in
    g.project_ids, (g.tracker_ids empty or d.tracker_id in g.tracker_ids), and the
    visibility ... and, when d.private_note: g.private_notes or (user_id != 0 and
    d.author_id == user_id)"."""
    if doc.type not in g.types or doc.project_id not in g.project_ids:
        return False
    if g.tracker_ids and doc.tracker_id not in g.tracker_ids:
        return False
    own = bool(set(doc.owner_ids) & principals)
    if g.visibility == Visibility.ALL:
        visible = True
    elif g.visibility == Visibility.DEFAULT:
        visible = not doc.is_private or own
    elif g.visibility == Visibility.OWN:
        visible = own
    else:
        raise AssertionError(f"a filter with visibility {g.visibility} passed validation")
    if doc.private_note and not (g.private_notes or (user_id != 0 and doc.author_id == user_id)):
        return False
    return visible


def may_see(doc: Document, f: Filter) -> bool:
    """The permission oracle, written from the Filter's documentation (ragd.proto), not from the code."""
    if f.project_ids and doc.project_id not in f.project_ids:
        return False
    if f.types and doc.type not in f.types:
        return False
    if f.grants:
        # "the principal P = ({user_id} + group_ids) without 0"
        principals = ({f.user_id} | set(f.group_ids)) - {0}
        if not any(_passes_grant(doc, g, f.user_id, principals) for g in f.grants):
            return False
    elif doc.is_private or doc.private_note:  # "a private document (or a private note) is hidden unless"
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
