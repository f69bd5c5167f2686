# frozen_string_literal: true

require "test_helper"
require "stringio"

# Stand-ins with the attributes of Redmine's models that Ragd::Redmine reads.
module FakeRedmine
  Journal = Struct.new(:id, :notes, :private_notes, :user_id, :created_on, :updated_on, keyword_init: true)
  Issue = Struct.new(:id, :subject, :description, :project_id, :is_private, :author_id, :assigned_to_id,
                     :assigned_to, :lock_version, :updated_on, :journals, keyword_init: true)
  Group = Struct.new(:id, :user_ids)
  Project = Struct.new(:id)
  Role = Struct.new(:issues_visibility, :permissions) do
    def allowed_to?(permission) = permissions.include?(permission)
  end
  # roles: { project_id => [Role] }; Redmine's allowed_to? also checks modules and
  # project status, which these fakes leave out.
  User = Struct.new(:id, :admin, :logged, :roles) do
    def admin? = admin
    def logged? = logged
    def roles_for_project(project) = roles.fetch(project.id, [])
    def allowed_to?(permission, project) = admin || roles_for_project(project).any? { |r| r.allowed_to?(permission) }
  end

  VIEW = %i[view_issues].freeze
  PRIVATE_NOTES = %i[view_issues view_private_notes].freeze
  PROJECTS = (1..5).map { |i| Project.new(i) }.freeze

  def self.user(id, roles = {}, admin: false, logged: true) = User.new(id, admin, logged, roles)

  def self.role(visibility, permissions = VIEW) = Role.new(visibility, permissions)

  T0 = Time.utc(2026, 5, 1, 12)
end

# Offline: the mapping, the job's calls and the permission filter.
class TestRedmineMapping < Minitest::Test
  include FakeRedmine
  R = Ragd::Redmine

  def issue(**over)
    Issue.new(id: 10, subject: "Printer jam", description: "Jams on page two.", project_id: 1, is_private: false,
              author_id: 20, assigned_to_id: 22, lock_version: 0, updated_on: T0,
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
                   metadata: { "issue_id" => "10" } }, doc)
    assert_equal "Printer jam", R.issue_document(issue(description: nil))[:text] # ragd needs some text
    assert_equal 8, R.issue_document(issue(lock_version: 7))[:version]
    assert_equal [], R.issue_document(issue(assigned_to_id: nil))[:viewer_ids]
    assert_equal [5, 6], R.issue_document(issue(assigned_to: Group.new(3, [5, 6]), assigned_to_id: 3))[:viewer_ids]
    Ragd::Convert.document(doc) # and it converts
  end

  def test_journal_documents
    docs = R.documents_for(issue)
    assert_equal %w[issue:10 journal:100 journal:101], docs.map { |d| d[:id] } # the blank note is no document
    public_note, private_note = docs[1], docs[2]
    assert_equal ["journal", "Printer jam", "Replaced the roller.", 1, false, 21, [20, 22]],
                 public_note.values_at(:type, :title, :text, :project_id, :is_private, :author_id, :viewer_ids)
    assert_equal "10", public_note[:metadata]["issue_id"]
    assert_equal [true, []], private_note.values_at(:is_private, :viewer_ids)
    # A public note on a private issue is private too, visible to the issue's author and assignee.
    on_private = R.documents_for(issue(is_private: true))[1]
    assert_equal [true, [20, 22]], on_private.values_at(:is_private, :viewer_ids)
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

  def test_filter_for_a_member
    user = user(30, {
                  1 => [role("default")], # public issues
                  2 => [role("own"), role("all", PRIVATE_NOTES)], # the best role wins
                  3 => [role("own")], # own issues only: left out
                  4 => [role("all", %i[add_issues])], # no view_issues at all
                  5 => [role("all")] # private issues but not private notes
                })
    f = Ragd::Redmine.filter_for(user, PROJECTS)
    assert_equal [[1, 2, 5], [2], 30, nil], [f.project_ids, f.private_project_ids, f.user_id, f.all_private]
    # The search scope narrows it.
    assert_equal [2], Ragd::Redmine.filter_for(user, [PROJECTS[1]]).project_ids
  end

  def test_filter_for_admin_anonymous_and_nobody
    admin = Ragd::Redmine.filter_for(user(1, admin: true), PROJECTS)
    assert_equal [[1, 2, 3, 4, 5], true], [admin.project_ids, admin.all_private]
    anon = Ragd::Redmine.filter_for(user(2, { 1 => [role("default")] }, logged: false), PROJECTS)
    assert_equal [[1], 0], [anon.project_ids, anon.user_id]
    # Seeing nothing must not turn into an empty project list, which means "all projects".
    assert_nil Ragd::Redmine.filter_for(user(3, { 3 => [role("own")] }), PROJECTS)
    assert_nil Ragd::Redmine.filter_for(user(3), PROJECTS)
    assert_nil Ragd::Redmine.filter_for(user(1, admin: true), [])
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
