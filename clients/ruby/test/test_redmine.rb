# frozen_string_literal: true

require "test_helper"
require "stringio"

# Stand-ins with the attributes of Redmine's models that Ragd::Redmine reads, and
# Redmine 5's own rules for them, ported: Project#allows_to?, User#roles_for_project,
# User#allowed_to?, and (for the oracle) Issue#visible? and Journal.visible.
module FakeRedmine
  Journal = Struct.new(:id, :notes, :private_notes, :user_id, :created_on, :updated_on, keyword_init: true)
  Issue = Struct.new(:id, :subject, :description, :project_id, :is_private, :author_id, :assigned_to_id,
                     :assigned_to, :lock_version, :updated_on, :journals, :tracker_id, keyword_init: true)
  Group = Struct.new(:id, :user_ids)

  MODULE_OF = { view_issues: "issue_tracking", view_private_notes: "issue_tracking", add_issues: "issue_tracking",
                view_wiki_pages: "wiki", view_news: "news", view_documents: "documents", view_messages: "boards",
                view_changesets: "repository" }.freeze
  ALL_MODULES = MODULE_OF.values.uniq.freeze

  Project = Struct.new(:id, :is_public, :status, :modules) do
    def is_public? = is_public # rubocop:disable Naming/PredicateName (Redmine's name)
    def archived? = status == :archived
    # Project#allows_to?: nothing on archived projects (every permission here is a read one,
    # so closed projects allow them), nothing of a disabled module.
    def allows_to?(permission) = !archived? && modules.include?(MODULE_OF.fetch(permission))
  end

  # tracker_ids nil: every tracker (Role#permissions_all_trackers?); member false: a builtin role.
  Role = Struct.new(:issues_visibility, :permissions, :tracker_ids, :member) do
    def allowed_to?(permission) = permissions.include?(permission)
    def member? = member != false
    def permissions_all_trackers?(_permission) = tracker_ids.nil?
    def permissions_tracker_ids(_permission) = tracker_ids || []
  end

  # roles: { project_id => [Role] } (the user's membership, its groups' included);
  # builtin: the Non member or Anonymous role; overrides: { project_id => [Role] } given to
  # that builtin group in public projects.
  User = Struct.new(:id, :admin, :logged, :roles, :builtin, :overrides, :group_ids) do
    def admin? = admin
    def logged? = logged

    def roles_for_project(project)
      return [] if project.archived?

      mine = roles.fetch(project.id, [])
      return mine if logged && mine.any?
      return overrides.fetch(project.id) { [builtin] } if project.is_public?

      []
    end

    def allowed_to?(permission, project)
      return false unless project.allows_to?(permission)
      return true if admin

      roles_for_project(project).any? { |r| (project.is_public? || r.member?) && r.allowed_to?(permission) }
    end
  end

  VIEW = %i[view_issues].freeze
  PRIVATE_NOTES = %i[view_issues view_private_notes].freeze
  PROJECTS = (1..5).map { |i| Project.new(i, false, :active, ALL_MODULES) }.freeze
  NOBODY = Role.new("default", [], nil, false)

  def self.user(id, roles = {}, admin: false, logged: true, builtin: NOBODY, overrides: {}, groups: [])
    User.new(id, admin, logged, roles, builtin, overrides, groups)
  end

  def self.role(visibility, permissions = VIEW, trackers: nil, member: true)
    Role.new(visibility, permissions, trackers, member)
  end

  T0 = Time.utc(2026, 5, 1, 12)
end

# Offline: the mapping, the job's calls and the permission filter.
class TestRedmineMapping < Minitest::Test
  include FakeRedmine
  R = Ragd::Redmine

  def issue(**over)
    Issue.new(id: 10, subject: "Printer jam", description: "Jams on page two.", project_id: 1, is_private: false,
              author_id: 20, assigned_to_id: 22, lock_version: 0, updated_on: T0, tracker_id: 2,
              journals: [Journal.new(id: 100, notes: "Replaced the roller.", private_notes: false, user_id: 21,
                                     created_on: T0 - 60, updated_on: T0 + 60),
                         Journal.new(id: 101, notes: "Vendor contract is expiring.", private_notes: true, user_id: 21,
                                     created_on: T0 - 30),
                         Journal.new(id: 102, notes: "  ", private_notes: false, user_id: 21, created_on: T0 - 10)],
              **over)
  end

  def test_issue_document
    doc = R.issue_document(issue)
    assert_equal({ id: "issue:10", type: "issue", title: "Printer jam", text: "Jams on page two.", project_id: 1,
                   is_private: false, author_id: 20, viewer_ids: [22], updated_at: T0, version: 1,
                   metadata: { "issue_id" => "10" }, tracker_id: 2, owner_ids: [20, 22], private_note: false }, doc)
    assert_equal "Printer jam", R.issue_document(issue(description: nil))[:text] # ragd needs some text
    assert_equal 8, R.issue_document(issue(lock_version: 7))[:version]
    assert_equal [], R.issue_document(issue(assigned_to_id: nil))[:viewer_ids]
    group_assigned = R.issue_document(issue(assigned_to: Group.new(3, [5, 6]), assigned_to_id: 3))
    assert_equal [[5, 6], [20, 3]], group_assigned.values_at(:viewer_ids, :owner_ids) # owners name the group itself
    assert_equal [20], R.issue_document(issue(assigned_to_id: nil))[:owner_ids]
    assert_equal [20], R.issue_document(issue(assigned_to_id: 20))[:owner_ids] # the author assigned to themself
    msg = Ragd::Convert.document(doc) # and it converts
    assert_equal [2, [20, 22], false], [msg.tracker_id, msg.owner_ids.to_a, msg.private_note]
  end

  def test_journal_documents
    docs = R.documents_for(issue)
    assert_equal %w[issue:10 journal:100 journal:101], docs.map { |d| d[:id] } # the blank note is no document
    public_note, private_note = docs[1], docs[2]
    assert_equal ["journal", "Printer jam", "Replaced the roller.", 1, false, 21, [20, 22]],
                 public_note.values_at(:type, :title, :text, :project_id, :is_private, :author_id, :viewer_ids)
    assert_equal "10", public_note[:metadata]["issue_id"]
    # A journal carries its issue's privacy, tracker and owners; author_id is the note's writer.
    assert_equal [2, [20, 22], false], public_note.values_at(:tracker_id, :owner_ids, :private_note)
    assert_equal [false, true, 21, []], private_note.values_at(:is_private, :private_note, :author_id, :viewer_ids)
    # A public note on a private issue: private (the issue is), its viewers the issue's author and assignee
    # (for filters without grants).
    on_private = R.documents_for(issue(is_private: true))[1]
    assert_equal [true, false, [20, 22]], on_private.values_at(:is_private, :private_note, :viewer_ids)
  end

  def test_journal_versions_grow_with_the_note_and_with_the_issue
    j = issue.journals[0]
    v = R.journal_version(issue, j)
    assert_equal ((T0 + 60).to_r * 1000).to_i, v # edited after the issue's last change
    assert_operator R.journal_version(issue(updated_on: T0 + 3600), j), :>, v # the issue moved, say
    j2 = j.dup.tap { |x| x.updated_on = T0 + 7200 }
    assert_operator R.journal_version(issue, j2), :>, v # the note was edited
    # No updated_on (older Redmine): the note's creation time.
    assert_equal ((T0 - 30).to_r * 1000).to_i, R.journal_version(issue(updated_on: nil), issue.journals[1])
  end

  class RecordingClient
    attr_reader :calls

    def initialize(fail_ids: [])
      @calls = []
      @fail_ids = fail_ids
    end

    def upsert(docs)
      @calls << [:upsert, docs.map { |d| d[:id] }]
      acks = docs.map { |d| Ragd::Ack.new(id: d[:id], status: @fail_ids.include?(d[:id]) ? :failed : :indexed, error: "bad") }
      Ragd::WriteResult.new(acks: acks, sequence: 1)
    end

    def delete(ids, versions: {})
      @calls << [:delete, ids, versions]
      Ragd::WriteResult.new(acks: [], sequence: 2)
    end
  end

  def test_job_upserts_and_deletes_the_notes_that_went_blank
    client = RecordingClient.new
    R::IssueIndexJob.new(client).perform(issue)
    assert_equal [[:upsert, %w[issue:10 journal:100 journal:101]], [:delete, ["journal:102"], {}]], client.calls
    failing = RecordingClient.new(fail_ids: ["journal:101"])
    err = assert_raises(Ragd::Error) { R::IssueIndexJob.new(failing).perform(issue) }
    assert_match(/journal:101/, err.message)
  end

  def test_job_remove_is_versioned
    client = RecordingClient.new
    R::IssueIndexJob.new(client).remove(10, lock_version: 4, journal_ids: [100], now: T0)
    ms = (T0.to_r * 1000).to_i
    assert_equal [[:delete, %w[issue:10 journal:100], { "issue:10" => 5, "journal:100" => ms }]], client.calls
  end

  def grants(filter) = filter.grants.map { |g| [g.types, g.project_ids, g.visibility, g.tracker_ids, g.private_notes] }

  def test_filter_for_a_member
    user = user(30, {
                  1 => [role("default")], # public issues and their own
                  2 => [role("own"), role("all", PRIVATE_NOTES)], # roles are ORed; private notes are per project
                  3 => [role("own")], # their own issues only
                  4 => [role("all", %i[add_issues])], # no view_issues at all
                  5 => [role("all")] # private issues but not private notes
                }, groups: [70, 71])
    f = Ragd::Redmine.filter_for(user, projects: PROJECTS)
    assert_equal [30, [70, 71]], [f.user_id, f.group_ids]
    assert_equal [[%w[issue journal], [1], :default, [], false], [%w[issue journal], [2], :own, [], true],
                  [%w[issue journal], [2], :all, [], true], [%w[issue journal], [3], :own, [], false],
                  [%w[issue journal], [5], :all, [], false]].sort, grants(f).sort
    # The search scope narrows it; the old positional form still works.
    assert_equal [[2]], Ragd::Redmine.filter_for(user, projects: [PROJECTS[1]]).grants.map(&:project_ids).uniq
    assert_equal grants(f), grants(Ragd::Redmine.filter_for(user, PROJECTS))
    Ragd::Convert.filter(f) # and it converts
  end

  def test_filter_for_trackers_modules_and_other_types
    bug_only = role("default", %i[view_issues view_wiki_pages], trackers: [1])
    no_tracker = role("all", VIEW, trackers: [])
    wikiless = FakeRedmine::Project.new(6, false, :active, FakeRedmine::ALL_MODULES - %w[wiki])
    closed = FakeRedmine::Project.new(7, false, :closed, FakeRedmine::ALL_MODULES)
    archived = FakeRedmine::Project.new(8, false, :archived, FakeRedmine::ALL_MODULES)
    user = user(31, { 1 => [bug_only], 2 => [no_tracker], 6 => [bug_only], 7 => [bug_only], 8 => [bug_only] })
    f = Ragd::Redmine.filter_for(user, projects: [*PROJECTS, wikiless, closed, archived], types: %w[issue wiki])
    assert_equal [[["issue"], [1, 6, 7], :default, [1], false], [["wiki"], [1, 7], :all, [], false]], grants(f)
    assert_raises(ArgumentError) { Ragd::Redmine.filter_for(user, projects: PROJECTS, types: %w[attachment]) }
    docs = Ragd::Redmine.filter_for(user(32, { 1 => [role("all", %i[view_documents view_news])] }),
                                    projects: PROJECTS, types: %w[wiki news document])
    assert_equal [[%w[news document], [1], :all, [], false]], grants(docs) # one grant, both types
  end

  def test_filter_for_public_projects_builtin_roles_and_anonymous
    public_project = FakeRedmine::Project.new(9, true, :active, FakeRedmine::ALL_MODULES)
    non_member = role("all", PRIVATE_NOTES, member: false)
    stranger = user(33, {}, builtin: non_member)
    assert_equal [[%w[issue journal], [9], :all, [], true]],
                 grants(Ragd::Redmine.filter_for(stranger, projects: [*PROJECTS, public_project]))
    # Roles given to the Non member group in the project override the builtin role.
    overridden = user(33, {}, builtin: non_member, overrides: { 9 => [role("own")] })
    assert_equal [[%w[issue journal], [9], :own, [], false]],
                 grants(Ragd::Redmine.filter_for(overridden, projects: [public_project]))
    # Anonymous: non-private issues only, whatever the role says, and nobody's own.
    anon = Ragd::Redmine.filter_for(user(2, { 1 => [role("own")] }, logged: false, builtin: role("all", member: false),
                                                                    groups: [70]), projects: [*PROJECTS, public_project])
    assert_equal [0, [], [[%w[issue journal], [9], :default, [], false]]], [anon.user_id, anon.group_ids, grants(anon)]
  end

  def test_filter_for_admin_and_nobody
    admin = Ragd::Redmine.filter_for(user(1, admin: true), projects: PROJECTS, types: %w[issue journal wiki])
    assert_equal [[%w[issue journal], [1, 2, 3, 4, 5], :all, [], true], [["wiki"], [1, 2, 3, 4, 5], :all, [], false]],
                 grants(admin)
    # Seeing nothing must not turn into a filter without grants, which would mean every public document.
    assert_nil Ragd::Redmine.filter_for(user(3, { 3 => [role("all", %i[add_issues])] }), projects: PROJECTS)
    assert_nil Ragd::Redmine.filter_for(user(3), projects: PROJECTS)
    assert_nil Ragd::Redmine.filter_for(user(1, admin: true), projects: [])
    assert_raises(ArgumentError) { Ragd::Redmine.filter_for(user(1, admin: true)) } # no ::Project outside Redmine
  end

  def test_search_sends_nothing_for_a_user_who_sees_nothing
    never = Object.new.tap { |o| o.define_singleton_method(:search) { |*| flunk "no search expected" } }
    result = Ragd::Redmine.search("x", user: user(3), projects: PROJECTS, client: never)
    assert_empty result.hits
  end

  def test_search_falls_back_to_nil_when_ragd_is_unavailable
    down = Object.new.tap do |o|
      o.define_singleton_method(:search) { |*, **| raise Ragd::Unavailable, "UNAVAILABLE: down" }
    end
    log = StringIO.new
    Ragd::Redmine.logger = Logger.new(log)
    assert_nil Ragd::Redmine.search("x", user: user(1, admin: true), projects: PROJECTS, client: down)
    assert_match(/falling back: UNAVAILABLE: down/, log.string)
  ensure
    Ragd::Redmine.logger = nil
  end

  def test_ranked_issue_ids
    hit = ->(id, score, issue_id = nil) do
      Ragd::Hit.new(document_id: id, score: score,
                    document: Ragd::Document.new(metadata: issue_id ? { "issue_id" => issue_id } : {}))
    end
    result = Ragd::SearchResult.new(hits: [hit.("journal:5", 0.9, "2"), hit.("issue:3", 0.8),
                                           hit.("issue:2", 0.7, "2"), hit.("wiki:1", 0.6)])
    assert_equal [[0.9, 2], [0.8, 3]], Ragd::Redmine.ranked_issue_ids(result)
  end

  private

  def user(...) = FakeRedmine.user(...)
  def role(...) = FakeRedmine.role(...)
end

# Random Redmine worlds (projects public or private, closed or archived, with modules;
# roles with visibilities, view permissions and tracker limits; builtin roles and their
# group overrides; users in groups; issues assigned to users and groups, private ones;
# notes, private ones): for every user and search scope, the documents filter_for's
# grants admit, by the grant rule as ragd.proto states it, are exactly the ones
# Redmine 5's rules (Issue#visible?, Journal.visible) show. Offline.
class TestRedmineRandomWorlds < Minitest::Test
  include FakeRedmine

  WORLDS = Integer(ENV.fetch("REDMINE_WORLDS", "40"))

  # The grant rule of proto/ragd/v1/ragd.proto (message Grant), for one document Hash.
  def admits?(filter, doc)
    principals = ([filter.user_id] + filter.group_ids).reject(&:zero?)
    own = !(doc[:owner_ids] & principals).empty?
    filter.grants.any? do |g|
      next false unless g.types.include?(doc[:type]) && g.project_ids.include?(doc[:project_id])
      next false unless g.tracker_ids.empty? || g.tracker_ids.include?(doc[:tracker_id])

      visible = { all: true, default: !doc[:is_private] || own, own: own }.fetch(g.visibility)
      visible &&= g.private_notes || (filter.user_id != 0 && doc[:author_id] == filter.user_id) if doc[:private_note]
      visible
    end
  end

  # Issue#visible? (Redmine 5.0), for the fakes.
  def issue_visible?(user, issue, project)
    return false unless project.allows_to?(:view_issues)
    return true if user.admin?

    user.roles_for_project(project).any? do |role|
      next false unless (project.is_public? || role.member?) && role.allowed_to?(:view_issues)

      mine = issue.author_id == user.id || issue.assigned_to_id == user.id || user.group_ids.include?(issue.assigned_to_id)
      visible = if user.logged?
                  { "all" => true, "default" => !issue.is_private || mine, "own" => mine }.fetch(role.issues_visibility, false)
                else
                  !issue.is_private
                end
      visible && (role.permissions_all_trackers?(:view_issues) ||
                  role.permissions_tracker_ids(:view_issues).include?(issue.tracker_id))
    end
  end

  # Journal.visible: its issue visible, and Journal.visible_notes_condition.
  def journal_visible?(user, issue, journal, project)
    return false unless issue_visible?(user, issue, project)
    return true if !journal.private_notes || journal.user_id == user.id
    return false if project.archived?

    user.admin? || user.roles_for_project(project).any? do |r|
      (project.is_public? || r.member?) && r.allowed_to?(:view_private_notes)
    end
  end

  # One world: a fixture builder, long by nature.
  def random_world(rng) # rubocop:disable Metrics/AbcSize, Metrics/CyclomaticComplexity, Metrics/PerceivedComplexity
    perms = %i[view_issues view_private_notes view_wiki_pages]
    role = lambda do |member = true|
      FakeRedmine.role(%w[all default own].sample(random: rng), perms.select { |pm| rng.rand < (pm == :view_issues ? 0.85 : 0.5) },
                       trackers: rng.rand < 0.3 ? (1..4).to_a.sample(rng.rand(0..2), random: rng) : nil, member: member)
    end
    projects = (1..6).map do |i|
      FakeRedmine::Project.new(i, rng.rand < 0.5, %i[active active active closed archived].sample(random: rng),
                               FakeRedmine::ALL_MODULES.select { rng.rand < 0.85 })
    end
    roles = (1..4).map { role.call }
    groups = { 70 => [], 71 => [] }
    group_roles = groups.keys.to_h do |g|
      [g, projects.sample(rng.rand(0..2), random: rng).to_h do |p|
            [p.id, roles.sample(rng.rand(1..2), random: rng)]
          end]
    end
    non_member, anonymous = role.call(false), role.call(false)
    nm_overrides = projects.select { |p| p.is_public && rng.rand < 0.3 }.to_h { |p| [p.id, [roles.sample(random: rng)]] }
    users = (2..9).map do |id|
      mine = groups.keys.select { rng.rand < 0.4 }
      mine.each { |g| groups[g] << id }
      own = projects.sample(rng.rand(0..3), random: rng).to_h { |p| [p.id, roles.sample(rng.rand(1..2), random: rng)] }
      mine.each { |g| group_roles[g].each { |pid, rs| own[pid] = (own[pid] || []) | rs } } # inherited memberships
      FakeRedmine.user(id, own, builtin: non_member, overrides: nm_overrides, groups: mine)
    end
    users << FakeRedmine.user(1, admin: true, builtin: non_member)
    users << FakeRedmine.user(99, {}, logged: false, builtin: anonymous)
    issues = (1..25).map do |i|
      journals = (0...rng.rand(0..3)).map do |j|
        Journal.new(id: (i * 10) + j, notes: "note", private_notes: rng.rand < 0.35, user_id: rng.rand(2..9), created_on: T0)
      end
      Issue.new(id: i, subject: "s", description: "d", project_id: projects.sample(random: rng).id,
                is_private: rng.rand < 0.35, author_id: rng.rand(2..9),
                assigned_to_id: [nil, *2..9, 70, 71].sample(random: rng), tracker_id: rng.rand(1..4),
                lock_version: 0, updated_on: T0, journals: journals)
    end
    [projects, users, issues]
  end

  def test_filter_for_shows_exactly_what_redmine_shows
    rng = Random.new(Integer(ENV.fetch("REDMINE_SEED", "15")))
    checked = 0
    WORLDS.times do
      projects, users, issues = random_world(rng)
      by_id = projects.to_h { |p| [p.id, p] }
      users.each do |user|
        [nil, projects.sample(2, random: rng)].each do |scope|
          filter = Ragd::Redmine.filter_for(user, projects: scope || projects)
          in_scope = (scope || projects).map(&:id)
          issues.each do |issue|
            project = by_id.fetch(issue.project_id)
            Ragd::Redmine.documents_for(issue).each do |doc|
              journal = issue.journals.find { |j| Ragd::Redmine.journal_doc_id(j.id) == doc[:id] }
              want = in_scope.include?(issue.project_id) &&
                     (journal ? journal_visible?(user, issue, journal, project) : issue_visible?(user, issue, project))
              got = filter ? admits?(filter, doc) : false
              assert_equal want, got, "user #{user.id} #{doc[:id]}: Redmine #{want}, grants #{got} (#{filter&.grants})"
              checked += 1
            end
          end
        end
      end
    end
    assert_operator checked, :>, WORLDS * 200
    puts "\nfilter_for against Redmine's rules: #{WORLDS} worlds, #{checked} (user, scope, document) checks"
  end
end

# Against the real daemon: what each kind of Redmine user finds.
class TestRedmineLive < Minitest::Test
  include RagdTest
  include FakeRedmine

  QUERY = "printer paper jam"

  def setup
    require_daemon!
    @client = Ragd::Client.new(ADDRESS, timeout: 60, collection: new_collection)
    @job = Ragd::Redmine::IssueIndexJob.new(@client)
    note = ->(id, text, user, priv = false) { Journal.new(id: id, notes: text, private_notes: priv, user_id: user, created_on: T0) }
    @public_issue = Issue.new(id: 10, subject: "Printer jams", description: "The printer jams on page two.",
                              project_id: 1, is_private: false, author_id: 20, lock_version: 0, updated_on: T0,
                              journals: [note.(100, "The paper tray roller was replaced.", 21),
                                         note.(101, "Private: the printer vendor contract expires.", 21, true),
                                         note.(102, "", 21),
                                         note.(103, "Printer jams again after the roller swap.", 23)])
    @private_issue = Issue.new(id: 11, subject: "Printer jam in the CEO office", description: "Paper jam, printer offline.",
                               project_id: 1, is_private: true, author_id: 20, assigned_to_id: 22, lock_version: 2,
                               updated_on: T0, journals: [note.(110, "Cleared the paper jam in the printer.", 20)])
    @other_project = Issue.new(id: 12, subject: "Printer jam on floor 2", description: "Paper jam every morning.",
                               project_id: 2, is_private: false, author_id: 40, lock_version: 0, updated_on: T0,
                               journals: [])
    [@public_issue, @private_issue, @other_project].each { |i| @job.perform(i) }
  end

  def found(user, projects = PROJECTS)
    Ragd::Redmine.search(QUERY, user: user, projects: projects, client: @client, top_k: 50, mode: :vector)
                 .document_ids.sort
  end

  def test_each_user_finds_what_redmine_would_show
    developer = FakeRedmine.user(30, { 1 => [FakeRedmine.role("all", PRIVATE_NOTES)] })
    assert_equal %w[issue:10 issue:11 journal:100 journal:101 journal:103 journal:110], found(developer)
    reporter = FakeRedmine.user(31, { 1 => [FakeRedmine.role("default")] })
    assert_equal %w[issue:10 journal:100 journal:103], found(reporter)
    assignee = FakeRedmine.user(22, { 1 => [FakeRedmine.role("default")] })
    assert_equal %w[issue:10 issue:11 journal:100 journal:103 journal:110], found(assignee)
    note_author = FakeRedmine.user(21, { 1 => [FakeRedmine.role("default")] })
    assert_equal %w[issue:10 journal:100 journal:101 journal:103], found(note_author)
    # "own" visibility: the issues they wrote or are assigned, with their public notes.
    own_only = FakeRedmine.user(20, { 1 => [FakeRedmine.role("own")] })
    assert_equal %w[issue:10 issue:11 journal:100 journal:103 journal:110], found(own_only)
    group_member = FakeRedmine.user(24, { 1 => [FakeRedmine.role("own")] }, groups: [22])
    assert_equal %w[issue:11 journal:110], found(group_member) # issue 11 is assigned to principal 22
    elsewhere = FakeRedmine.user(41, { 2 => [FakeRedmine.role("default")] })
    assert_equal %w[issue:12], found(elsewhere)
    admin = FakeRedmine.user(1, admin: true)
    assert_equal 7, found(admin).size
    assert_equal %w[issue:12], found(admin, [PROJECTS[1]]) # the search scope
    nobody = FakeRedmine.user(50)
    assert_empty found(nobody)
  end

  def test_changes_reach_the_index
    reporter = FakeRedmine.user(31, { 1 => [FakeRedmine.role("default")] })
    # Note 100 emptied, then the issue made private: its remaining notes follow it.
    @public_issue.journals[0].notes = ""
    @job.perform(@public_issue)
    assert_equal %w[issue:10 journal:103], found(reporter)
    @public_issue.is_private = true
    @public_issue.lock_version += 1
    @public_issue.updated_on = T0 + 60
    @job.perform(@public_issue)
    assert_empty found(reporter)
    author = FakeRedmine.user(20, { 1 => [FakeRedmine.role("default")] })
    assert_includes found(author), "journal:103" # the issue's author still sees its public notes
  end

  def test_a_removed_issue_stays_removed
    admin = FakeRedmine.user(1, admin: true)
    @job.remove(12, lock_version: @other_project.lock_version)
    refute_includes found(admin), "issue:12"
    stale = @job.perform(@other_project) # a delayed job carrying the issue as it was
    assert_equal [:stale], stale.acks.map(&:status)
    refute_includes found(admin), "issue:12"
  end
end
