"""A small Redmine in Python for the permission property test: projects (public or
private, active, closed or archived, with modules), roles (issues_visibility, view
permissions, per-role tracker limits), the builtin Non member and Anonymous roles
and their groups, users, groups, memberships of users and of groups, issues
(trackers, authors, assignees that are users or groups, private ones), journals
(private notes) and wiki pages and news.

Three independent parts:
- redmine_visible(): the oracle, ported from Redmine 5.0's own code (User#allowed_to?,
  User#roles_for_project, Project#allows_to?, Project#override_roles, Issue#visible?,
  Journal.visible / visible_notes_condition) without looking at ragd;
- documents(): what a Redmine plugin sends for each object (proto ragd.v1.Document:
  tracker_id, owner_ids, private_note; the gem's Ragd::Redmine.issue_document and
  journal_document do the same in Ruby);
- grants_for(): the filter a plugin builds for a user (the gem's
  Ragd::Redmine.filter_for, in Python).
The property test checks that ragd, given documents() and grants_for(), returns
exactly what redmine_visible() allows.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from ragd.domain import Document, Filter, Grant, Visibility

# Redmine::AccessControl: the view permission of each searchable type and its module.
PERMISSIONS = {"issue": ("view_issues", "issue_tracking"), "journal": ("view_issues", "issue_tracking"),
               "wiki": ("view_wiki_pages", "wiki"), "news": ("view_news", "news")}
MODULES = ("issue_tracking", "wiki", "news")
NON_MEMBER_GROUP, ANONYMOUS_GROUP = 90, 91  # GroupNonMember, GroupAnonymous
ANONYMOUS_ID = 99                           # AnonymousUser is a row of its own in Redmine


@dataclass
class Role:
    id: int
    issues_visibility: str                   # "all", "default", "own"
    permissions: set[str]
    all_trackers: bool = True                # Role#permissions_all_trackers?(:view_issues)
    tracker_ids: set[int] = field(default_factory=set)  # Role#permissions_tracker_ids(:view_issues)
    member: bool = True                      # false for the builtin roles


@dataclass
class Project:
    id: int
    is_public: bool
    status: str                              # "active", "closed", "archived"
    modules: set[str]


@dataclass
class User:
    id: int
    logged: bool = True
    admin: bool = False
    groups: set[int] = field(default_factory=set)


@dataclass
class Journal:
    id: int
    user_id: int
    notes: str
    private_notes: bool


@dataclass
class Issue:
    id: int
    project_id: int
    tracker_id: int
    author_id: int
    assigned_to_id: int | None               # a user or a group
    is_private: bool
    subject: str
    description: str
    journals: list[Journal]


@dataclass
class Page:                                  # a wiki page or a news item
    id: int
    kind: str
    project_id: int
    title: str
    text: str


class World:
    def __init__(self, rng: random.Random, words: list[str], n_issues: int = 110):
        self.rng = rng
        self.words = words
        self.projects = {pid: Project(pid, rng.random() < 0.5, rng.choice(["active"] * 6 + ["closed", "archived"]),
                                      {m for m in MODULES if rng.random() < 0.85})
                         for pid in range(1, 9)}
        perms = ["view_issues", "view_private_notes", "view_wiki_pages", "view_news"]

        def role(rid: int, member: bool = True) -> Role:
            limited = rng.random() < 0.3
            return Role(rid, rng.choice(["all", "default", "own"]),
                        {p for p in perms if rng.random() < (0.85 if p == "view_issues" else 0.5)},
                        all_trackers=not limited,
                        tracker_ids=set(rng.sample(range(1, 5), rng.randint(0, 2))) if limited else set(),
                        member=member)
        self.roles = {rid: role(rid) for rid in range(1, 6)}
        self.non_member = role(50, member=False)
        self.anonymous = role(51, member=False)
        self.groups = {gid: set() for gid in (70, 71, 72)}
        self.users = {uid: User(uid) for uid in range(1, 13)}
        self.users[1].admin = True
        self.users[ANONYMOUS_ID] = User(ANONYMOUS_ID, logged=False)
        for uid in range(2, 13):
            for gid in self.groups:
                if rng.random() < 0.3:
                    self.groups[gid].add(uid)
                    self.users[uid].groups.add(gid)
        # principal (user, group, builtin group) -> project -> role ids
        self.members: dict[int, dict[int, set[int]]] = {}
        for principal in [*range(2, 13), *self.groups]:
            for pid in rng.sample(sorted(self.projects), rng.randint(0, 4)):
                self.members.setdefault(principal, {})[pid] = set(rng.sample(sorted(self.roles), rng.randint(1, 2)))
        for builtin in (NON_MEMBER_GROUP, ANONYMOUS_GROUP):  # overrides on some public projects
            for pid in [p for p, pr in self.projects.items() if pr.is_public and rng.random() < 0.25]:
                self.members.setdefault(builtin, {})[pid] = {rng.choice(sorted(self.roles))}
        self.issues: dict[int, Issue] = {}
        self.pages: dict[int, Page] = {}
        next_journal = 1000
        for iid in range(1, n_issues + 1):
            journals = []
            for _ in range(rng.choice([0, 1, 2, 3])):
                journals.append(Journal(next_journal, rng.randint(2, 12), self.text(rng.randint(4, 30)),
                                        rng.random() < 0.3))
                next_journal += 1
            self.issues[iid] = Issue(iid, rng.choice(sorted(self.projects)), rng.randint(1, 4), rng.randint(2, 12),
                                     rng.choice([None, None, *range(2, 13), *self.groups]), rng.random() < 0.3,
                                     self.text(3), self.text(rng.randint(5, 60)), journals)
        for i in range(1, 25):
            self.pages[i] = Page(i, rng.choice(["wiki", "news"]), rng.choice(sorted(self.projects)), self.text(3),
                                 self.text(rng.randint(5, 50)))

    def text(self, n: int) -> str:
        return " ".join(self.rng.choices(self.words, k=n))

    def users_to_test(self) -> list[User]:
        return [self.users[u] for u in sorted(self.users)]

    # ------------------------------------------------------------ changes (moves, privacy, assignees, notes)

    def change(self, iid: int) -> Issue:
        issue, rng = self.issues[iid], self.rng
        what = rng.choice(["move", "privacy", "assignee", "tracker", "note"])
        if what == "move":
            issue.project_id = rng.choice(sorted(self.projects))
        elif what == "privacy":
            issue.is_private = not issue.is_private
        elif what == "assignee":
            issue.assigned_to_id = rng.choice([None, *range(2, 13), *self.groups])
        elif what == "tracker":
            issue.tracker_id = rng.randint(1, 4)
        elif issue.journals:
            j = rng.choice(issue.journals)
            j.private_notes = not j.private_notes
        return issue

    # ------------------------------------------------------------ Redmine's rules (the oracle)

    def _allows_to(self, project: Project, permission: str) -> bool:
        """Project#allows_to?: nothing on archived projects; only read actions on closed
        ones (every view_* permission is one); the permission's module enabled."""
        if project.status == "archived":
            return False
        module = {"view_issues": "issue_tracking", "view_private_notes": "issue_tracking",
                  "view_wiki_pages": "wiki", "view_news": "news"}[permission]
        return module in project.modules

    def _roles_for_project(self, user: User, project: Project) -> list[Role]:
        """User#roles_for_project: the member's roles (its own and those inherited from
        its groups); else, on a public project, the builtin role, overridden by the
        roles of the builtin group's membership there (Project#override_roles)."""
        if project.status == "archived":
            return []
        if user.logged:
            ids = set(self.members.get(user.id, {}).get(project.id, set()))
            for gid in user.groups:
                ids |= self.members.get(gid, {}).get(project.id, set())
            if ids:
                return [self.roles[r] for r in sorted(ids)]
        if project.is_public:
            group = NON_MEMBER_GROUP if user.logged else ANONYMOUS_GROUP
            override = self.members.get(group, {}).get(project.id)
            if override:
                return [self.roles[r] for r in sorted(override)]
            return [self.non_member if user.logged else self.anonymous]
        return []

    def allowed_to(self, user: User, permission: str, project: Project, block=None) -> bool:
        """User#allowed_to?(action, project, &block)."""
        if not self._allows_to(project, permission):
            return False
        if user.admin:
            return True
        return any((project.is_public or role.member) and permission in role.permissions
                   and (block is None or block(role)) for role in self._roles_for_project(user, project))

    def _is_or_belongs_to(self, user: User, principal: int | None) -> bool:
        return principal is not None and (principal == user.id or user.id in self.groups.get(principal, ()))

    def issue_visible(self, user: User, issue: Issue) -> bool:
        """Issue#visible?"""
        def block(role: Role) -> bool:
            if user.logged:
                mine = issue.author_id == user.id or self._is_or_belongs_to(user, issue.assigned_to_id)
                visible = {"all": True, "default": not issue.is_private or mine, "own": mine}.get(
                    role.issues_visibility, False)
            else:
                visible = not issue.is_private
            if not role.all_trackers:
                visible = visible and issue.tracker_id in role.tracker_ids
            return visible
        return self.allowed_to(user, "view_issues", self.projects[issue.project_id], block)

    def journal_visible(self, user: User, issue: Issue, journal: Journal) -> bool:
        """Journal.visible: the issue is visible, and (Journal.visible_notes_condition) the
        notes are not private, or the user wrote them, or may view private notes in the
        project (Project.allowed_to_condition with :skip_pre_condition: no module check)."""
        if not self.issue_visible(user, issue):
            return False
        if not journal.private_notes or journal.user_id == user.id:
            return True
        project = self.projects[issue.project_id]
        if project.status == "archived":
            return False
        return user.admin or any((project.is_public or role.member) and "view_private_notes" in role.permissions
                                 for role in self._roles_for_project(user, project))

    def visible_ids(self, user: User) -> set[str]:
        """Every document id the user may see, by Redmine's rules."""
        out = set()
        for issue in self.issues.values():
            if self.issue_visible(user, issue):
                out.add(f"issue:{issue.id}")
            for j in issue.journals:
                if j.notes.strip() and self.journal_visible(user, issue, j):
                    out.add(f"journal:{j.id}")
        for page in self.pages.values():
            permission = PERMISSIONS[page.kind][0]
            if self.allowed_to(user, permission, self.projects[page.project_id]):
                out.add(f"{page.kind}:{page.id}")
        return out

    # ------------------------------------------------------------ what a plugin sends

    def issue_documents(self, issue: Issue) -> list[Document]:
        owners = [issue.author_id, issue.assigned_to_id or 0]
        docs = [Document(id=f"issue:{issue.id}", title=issue.subject, text=issue.description or issue.subject,
                         project_id=issue.project_id, type="issue", is_private=issue.is_private,
                         author_id=issue.author_id, tracker_id=issue.tracker_id, owner_ids=list(owners))]
        for j in issue.journals:
            if j.notes.strip():
                # A journal carries its issue's privacy, tracker and owners; author_id is the note's writer.
                docs.append(Document(id=f"journal:{j.id}", title=issue.subject, text=j.notes,
                                     project_id=issue.project_id, type="journal", is_private=issue.is_private,
                                     author_id=j.user_id, tracker_id=issue.tracker_id, owner_ids=list(owners),
                                     private_note=j.private_notes))
        return docs

    def documents(self) -> list[Document]:
        docs = [d for issue in self.issues.values() for d in self.issue_documents(issue)]
        docs += [Document(id=f"{p.kind}:{p.id}", title=p.title, text=p.text, project_id=p.project_id, type=p.kind)
                 for p in self.pages.values()]
        return docs

    # ------------------------------------------------------------ the filter a plugin builds (filter_for)

    def grants_for(self, user: User, projects: list[int] | None = None,
                   types: tuple[str, ...] = ("issue", "journal", "wiki", "news")) -> Filter | None:
        """Ragd::Redmine.filter_for in Python: per project, one grant profile per role
        that may view issues (its visibility, trackers, and view_private_notes across
        the user's roles in that project); ALL grants where the module and view
        permission of the other types are there; projects of one profile merged."""
        issue_types = [t for t in types if t in ("issue", "journal")]
        profiles: dict[tuple, list[int]] = {}
        for pid in (projects if projects is not None else sorted(self.projects)):
            project = self.projects[pid]
            if issue_types and self.allowed_to(user, "view_issues", project):
                if user.admin:
                    keys = {("all", None, True)}
                else:
                    notes = self.allowed_to(user, "view_private_notes", project)
                    keys = set()
                    for role in self._roles_for_project(user, project):
                        if not ((project.is_public or role.member) and "view_issues" in role.permissions):
                            continue
                        trackers = None if role.all_trackers else tuple(sorted(role.tracker_ids))
                        if trackers == ():
                            continue
                        keys.add((role.issues_visibility if user.logged else "default", trackers, notes))
                for key in keys:
                    profiles.setdefault((tuple(issue_types), *key), []).append(pid)
            for t in types:
                if t not in issue_types and self.allowed_to(user, PERMISSIONS[t][0], project):
                    profiles.setdefault(((t,), "all", None, False), []).append(pid)
        if not profiles:
            return None
        vis = {"all": Visibility.ALL, "default": Visibility.DEFAULT, "own": Visibility.OWN}
        grants = [Grant(types=list(ts), project_ids=pids, visibility=vis[v], tracker_ids=list(tr or ()),
                        private_notes=notes) for (ts, v, tr, notes), pids in profiles.items()]
        return Filter(grants=grants, user_id=user.id if user.logged else 0,
                      group_ids=sorted(user.groups) if user.logged else [])
