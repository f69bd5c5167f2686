# frozen_string_literal: true

require "logger"
require "ragd/client"

module Ragd
  # The Redmine side, as a small example (not yet the plugin): how an issue and
  # its journals become ragd documents, a job that keeps them in sync, and the
  # permission filter for a user. Duck-typed, so it needs no Rails: it reads only
  # attributes Redmine's Issue, Journal, User and Role have.
  #
  #   # config/initializers/ragd.rb -- configure, but make no call: this runs in
  #   # the Puma/Unicorn master, and grpc used there is unusable in the workers.
  #   Ragd::Redmine.client = Ragd::Client.new(ENV["RAGD_ADDRESS"], timeout: 2)
  module Redmine
    # Role#issues_visibility values a grant can say (anything else is Redmine's "1=0").
    VISIBILITIES = %w[all default own].freeze
    # Journals follow their issue's visibility, plus the private-notes rule.
    ISSUE_TYPES = %w[issue journal].freeze
    # The view permission of each other searchable type (its module is the permission's
    # module, which User#allowed_to? checks). Extend with filter_for's permissions: keyword.
    TYPE_PERMISSIONS = { "wiki" => :view_wiki_pages, "news" => :view_news, "document" => :view_documents,
                         "message" => :view_messages, "changeset" => :view_changesets }.freeze

    class << self
      attr_writer :client, :logger

      # Client.new touches no grpc, so building the default here is fork-safe.
      def client = @client ||= Ragd::Client.new
      def logger = @logger ||= (defined?(::Rails) ? ::Rails.logger : Logger.new($stderr))
    end

    module_function

    def issue_doc_id(issue_id) = "issue:#{issue_id}"
    def journal_doc_id(journal_id) = "journal:#{journal_id}"

    # The issue and each journal with notes, as ragd documents (Hashes).
    def documents_for(issue)
      [issue_document(issue)] + issue.journals.select { |j| notes?(j) }.map { |j| journal_document(issue, j) }
    end

    def issue_document(issue)
      {
        id: issue_doc_id(issue.id), type: "issue", title: issue.subject.to_s,
        # ragd refuses a document without text: an issue with no description is still found by its subject.
        text: notes?(issue.description) ? issue.description.to_s : issue.subject.to_s,
        project_id: issue.project_id, author_id: issue.author_id,
        viewer_ids: assignee_ids(issue), updated_at: issue.updated_on,
        # lock_version starts at 0, which ragd reads as "unversioned, always apply": shift it by one so
        # every write is versioned and a delayed job carrying an older issue is ignored (STALE).
        version: issue.lock_version.to_i + 1,
        metadata: { "issue_id" => issue.id.to_s }
      }.merge(permission_fields(issue))
    end

    def journal_document(issue, journal)
      {
        id: journal_doc_id(journal.id), type: "journal", title: issue.subject.to_s, text: journal.notes.to_s,
        project_id: issue.project_id,
        # viewer_ids serve filters without grants (ragd 0.1), where a private note is private: seen by
        # its writer and private_project_ids; a public note on a private issue by whoever sees the
        # issue: its author and assignees.
        viewer_ids: journal.private_notes ? [] : [issue.author_id, *assignee_ids(issue)].compact.uniq,
        updated_at: journal_time(journal), version: journal_version(issue, journal),
        metadata: { "issue_id" => issue.id.to_s }
      }.merge(permission_fields(issue, journal))
    end

    # The fields ragd's grants test, for an issue or (with journal) one of its journals:
    # is_private, tracker_id and owner_ids describe the issue (a journal's visibility follows
    # its issue's, as Redmine's Journal.visible), author_id is the issue's author or the note's
    # writer, private_note the journal's private_notes. owner_ids are the principals for whom
    # the issue is "their own" (Issue.visible_condition): its author and its assignee, a user
    # or a group (a group's id, not its members: the filter names the user's groups).
    def permission_fields(issue, journal = nil)
      assignee = issue.respond_to?(:assigned_to_id) ? issue.assigned_to_id : nil
      {
        is_private: private_issue?(issue), tracker_id: issue.tracker_id.to_i,
        owner_ids: [issue.author_id, assignee].compact.map(&:to_i).uniq,
        author_id: journal ? journal.user_id : issue.author_id,
        private_note: journal&.private_notes ? true : false
      }
    end

    # Version of a journal's document: it changes when the note is edited and when the
    # issue changes (project, privacy, assignee all move the issue's updated_on), so a
    # moved or newly private issue never leaves its notes behind with stale permissions.
    # Milliseconds of the later of the two, so it only grows.
    def journal_version(issue, journal)
      [issue.updated_on, journal_time(journal)].compact.map { |t| (t.to_r * 1000).to_i }.max.to_i
    end

    def journal_time(journal)
      (journal.respond_to?(:updated_on) && journal.updated_on) || journal.created_on
    end

    def private_issue?(issue) = issue.is_private ? true : false

    def notes?(journal_or_text)
      text = journal_or_text.respond_to?(:notes) ? journal_or_text.notes : journal_or_text
      !text.to_s.strip.empty?
    end

    # A private issue assigned to a group is visible to the group's members.
    def assignee_ids(issue)
      assignee = issue.respond_to?(:assigned_to) ? issue.assigned_to : nil
      ids = assignee.respond_to?(:user_ids) ? assignee.user_ids : [issue.assigned_to_id]
      ids.compact.map(&:to_i)
    end

    # Keeps an issue's documents in sync; run it after every save of the issue or
    # of one of its journals. In the plugin it is wrapped by an ActiveJob:
    #
    #   class RagdIndexIssueJob < ApplicationJob
    #     retry_on Ragd::Unavailable, wait: :exponentially_longer
    #     def perform(issue_id)
    #       issue = Issue.includes(:journals).find_by(id: issue_id)
    #       Ragd::Redmine::IssueIndexJob.new.perform(issue) if issue
    #     end
    #   end
    class IssueIndexJob
      def initialize(client = Redmine.client)
        @client = client
      end

      # Upserts the issue and its noted journals; deletes the documents of journals
      # without notes (a note emptied since the last run). Versioned, so running it
      # twice or out of order is harmless. Raises Ragd::Error if a document failed.
      def perform(issue)
        result = @client.upsert(Redmine.documents_for(issue))
        silent = issue.journals.reject { |j| Redmine.notes?(j) }.map { |j| Redmine.journal_doc_id(j.id) }
        @client.delete(silent) unless silent.empty? # unversioned: leaves no tombstone for the many status-only journals
        failed = result.failed
        raise Ragd::Error, "ragd refused #{failed.map { |a| "#{a.id} (#{a.error})" }.join(', ')}" unless failed.empty?

        result
      end

      # After the issue is destroyed (plain values, so it can run in a job). The
      # deletes are versioned: a delayed upsert of the issue can no longer bring it back.
      def remove(issue_id, lock_version:, journal_ids: [], now: Time.now)
        versions = { Redmine.issue_doc_id(issue_id) => lock_version.to_i + 1 }
        # Journal versions are timestamps (see journal_version): now is newer than any.
        journal_ids.each { |id| versions[Redmine.journal_doc_id(id)] = (now.to_r * 1000).to_i }
        @client.delete(versions.keys, versions: versions)
      end
    end

    # Redmine's permissions for `user` as a ragd filter (Ragd::Filter with grants), or nil
    # when the user may see no document of these types in these projects (send no search:
    # a filter without grants would mean ragd 0.1's "every public document").
    #
    #   filter = Ragd::Redmine.filter_for(User.current, projects: scope, types: %w[issue journal wiki])
    #   filter && client.search(query, filter: filter)
    #
    # projects: the search scope (Redmine::Search's projects); nil: every project (one query
    #   for the projects and their modules, then Redmine's own per-project membership lookups).
    # types: document types to search: "issue" and "journal" (Issue.visible and Journal.visible:
    #   per-role issues_visibility and tracker limits, private notes where the user may
    #   view_private_notes in the project, a private note's writer), and any key of
    #   `permissions` (default TYPE_PERMISSIONS: wiki, news, document, message, changeset),
    #   visible wherever its module is on and the user holds its view permission.
    # user: answers id, logged?, admin?, allowed_to?(permission, project), roles_for_project(project),
    #   and group_ids (or groups); projects answer id and is_public?; roles answer
    #   issues_visibility, allowed_to?(permission), member? and, when they limit trackers (Redmine
    #   >= 3.4), permissions_all_trackers?(:view_issues) and permissions_tracker_ids(:view_issues).
    #   Redmine's User, Project and Role do; so do the duck-typed stand-ins in the tests.
    #
    # The rules (Redmine 5: Issue.visible_condition, Project.allowed_to_condition,
    # Journal.visible_notes_condition, Role#permissions_tracker_ids): admins see everything in
    # projects where the module is on; a member uses their roles in the project (their own and
    # their groups'), a non-member of a public project the Non member (or Anonymous) role or the
    # roles given to that builtin group there; each role that may view issues is one grant profile
    # (its visibility, its trackers); anonymous users see only non-private issues and own nothing.
    # Projects sharing a profile share a grant.
    def filter_for(user, legacy_projects = nil, projects: legacy_projects, types: ISSUE_TYPES,
                   permissions: TYPE_PERMISSIONS)
      issue_types, others = split_types(types, permissions)
      profiles = Hash.new { |h, k| h[k] = [] } # [types, visibility, trackers, private_notes] => project ids
      scope(projects).each do |project|
        if issue_types.any? && user.allowed_to?(:view_issues, project)
          issue_profiles(user, project).each { |profile| profiles[[issue_types, *profile]] << project.id }
        end
        others.each do |type|
          profiles[[[type], :all, nil, false]] << project.id if user.allowed_to?(permissions.fetch(type), project)
        end
      end
      grants = merge_types(profiles).map do |(grant_types, visibility, trackers, notes), ids|
        Grant.new(types: grant_types, project_ids: ids.uniq.sort, visibility: visibility, tracker_ids: trackers || [],
                  private_notes: notes)
      end
      return nil if grants.empty?

      logged = user.logged?
      Filter.new(grants: grants, user_id: logged ? user.id : 0, group_ids: logged ? group_ids(user) : [])
    end

    # [issue types, other types], refusing a type with no known view permission.
    def split_types(types, permissions)
      types = Array(types).map(&:to_s).uniq
      others = types - ISSUE_TYPES
      unknown = others.reject { |t| permissions.key?(t) }
      raise ArgumentError, "no view permission known for type(s) #{unknown.join(', ')} (see permissions:)" if unknown.any?

      [types & ISSUE_TYPES, others]
    end

    # [visibility, tracker ids or nil (any), private notes visible] for each role of `user`
    # that may view issues in `project` (the user may: allowed_to? said so).
    def issue_profiles(user, project)
      return [[:all, nil, true]] if user.admin?

      notes = user.allowed_to?(:view_private_notes, project)
      roles = user.roles_for_project(project).select do |role|
        (project.is_public? || role.member?) && role.allowed_to?(:view_issues)
      end
      roles.filter_map do |role|
        # Not logged in: non-private issues only, whatever the role says (Issue.visible_condition).
        visibility = user.logged? ? role.issues_visibility.to_s : "default"
        trackers = role_trackers(role)
        [visibility.to_sym, trackers, notes] if VISIBILITIES.include?(visibility) && trackers != []
      end.uniq
    end

    # nil: every tracker; otherwise the tracker ids the role may view issues of ([]: none).
    def role_trackers(role)
      return nil unless role.respond_to?(:permissions_all_trackers?)
      return nil if role.permissions_all_trackers?(:view_issues)

      Array(role.permissions_tracker_ids(:view_issues)).map(&:to_i).uniq.sort
    end

    def group_ids(user)
      ids = if user.respond_to?(:group_ids) then user.group_ids
            elsif user.respond_to?(:groups) then Array(user.groups).map(&:id)
            else
              []
            end
      Array(ids).compact.map(&:to_i).uniq.sort
    end

    # Profiles of the non-issue types over the same projects become one grant with both types.
    def merge_types(profiles)
      merged = {}
      profiles.each do |(types, visibility, trackers, notes), ids|
        key = [visibility, trackers, notes, ids.uniq.sort]
        merged[key] = (merged[key] || []) | types
      end
      merged.map { |(visibility, trackers, notes, ids), types| [[types, visibility, trackers, notes], ids] }
    end

    def scope(projects)
      return Array(projects) unless projects.nil?
      raise ArgumentError, "projects: required outside Redmine (no ::Project)" unless defined?(::Project)

      # Modules preloaded: Project#allows_to? then reads them without a query per project.
      ::Project.all.preload(:enabled_modules).to_a
    end

    # Searches issues and journals as `user` may see them. Returns nil when ragd
    # is unavailable or too slow (logged), so a caller can fall back:
    #
    #   ranked = Ragd::Redmine.search(q, user: User.current, projects: scope) or return super
    #
    # types: the document types searched, each with its own permission (see filter_for).
    def search(query, user:, projects:, types: ISSUE_TYPES, client: Redmine.client, **options)
      filter = filter_for(user, projects: projects, types: types)
      return SearchResult.new(hits: [], mode: nil, timings: Timings.new) unless filter

      client.search(query, filter: filter, **options)
    rescue Ragd::Unavailable => e
      Redmine.logger.warn("ragd search unavailable, falling back: #{e.message}")
      nil
    end

    # [[score, issue_id], ...] best first, one per issue (a journal hit counts for its
    # issue): the shape Redmine's search_result_ranks_and_ids returns.
    def ranked_issue_ids(result)
      best = {}
      result.hits.each do |h|
        issue_id = (h.document&.metadata || {})["issue_id"] || h.document_id[/\Aissue:(\d+)\z/, 1]
        best[issue_id.to_i] ||= h.score if issue_id
      end
      best.map { |id, score| [score, id] }
    end
  end
end
