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
    # Role#issues_visibility, from least to most.
    VISIBILITY = { "own" => 0, "default" => 1, "all" => 2 }.freeze

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
        project_id: issue.project_id, is_private: private_issue?(issue), author_id: issue.author_id,
        viewer_ids: assignee_ids(issue), updated_at: issue.updated_on,
        # lock_version starts at 0, which ragd reads as "unversioned, always apply": shift it by one so
        # every write is versioned and a delayed job carrying an older issue is ignored (STALE).
        version: issue.lock_version.to_i + 1,
        metadata: { "issue_id" => issue.id.to_s }
      }
    end

    def journal_document(issue, journal)
      private_note = journal.private_notes ? true : false
      {
        id: journal_doc_id(journal.id), type: "journal", title: issue.subject.to_s, text: journal.notes.to_s,
        project_id: issue.project_id,
        # A note is never more visible than its issue. A private note is seen by its author (author_id)
        # and by roles with view_private_notes (the filter's private_project_ids); a public note on a
        # private issue by whoever sees the issue: its author and assignees.
        is_private: private_note || private_issue?(issue), author_id: journal.user_id,
        viewer_ids: private_note ? [] : [issue.author_id, *assignee_ids(issue)].compact.uniq,
        updated_at: journal_time(journal), version: journal_version(issue, journal),
        metadata: { "issue_id" => issue.id.to_s }
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

    # Redmine's issue visibility as a ragd filter, or nil when the user may see no
    # issue at all (an empty project_ids would mean "every project": never send it).
    #
    # projects: the search scope (Redmine::Search's projects, or every project).
    # user: answers id, admin?, logged?, allowed_to?(permission, project) and
    #       roles_for_project(project) (roles answering issues_visibility, allowed_to?).
    #
    # ragd's filter has one private_project_ids list for private issues and private
    # notes alike, so a project is listed only where the user may see both; and a
    # project where the user sees only their own issues ("own") is left out. Both
    # can hide a document Redmine would show, never show one it would hide.
    def filter_for(user, projects)
      visible = projects.select { |p| user.allowed_to?(:view_issues, p) }
      ids = ->(list) { list.map(&:id).uniq.sort }
      if user.admin?
        return nil if visible.empty?

        return Filter.new(project_ids: ids.(visible), all_private: true, user_id: user.id)
      end
      levels = visible.to_h { |p| [p, issue_visibility(user, p)] }
      shown = visible.select { |p| levels[p] >= VISIBILITY["default"] }
      return nil if shown.empty?

      private_ok = shown.select { |p| levels[p] == VISIBILITY["all"] && user.allowed_to?(:view_private_notes, p) }
      Filter.new(project_ids: ids.(shown), private_project_ids: ids.(private_ok),
                 user_id: user.logged? ? user.id : 0) # anonymous is never anybody's author or viewer
    end

    def issue_visibility(user, project)
      roles = user.roles_for_project(project).select { |r| r.allowed_to?(:view_issues) }
      roles.map { |r| VISIBILITY.fetch(r.issues_visibility.to_s, 0) }.max || 0
    end

    # Searches issues and journals as `user` may see them. Returns nil when ragd
    # is unavailable or too slow (logged), so a caller can fall back:
    #
    #   ranked = Ragd::Redmine.search(q, user: User.current, projects: scope) or return super
    #
    # types: the filter above is Redmine's *issue* visibility, so only issue and
    # journal documents may be searched with it (wiki pages, news, ... in the same
    # collection follow other permissions).
    def search(query, user:, projects:, types: %w[issue journal], client: Redmine.client, **options)
      filter = filter_for(user, projects)
      return SearchResult.new(hits: [], mode: nil, timings: Timings.new) unless filter

      filter.types = types
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
