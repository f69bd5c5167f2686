# frozen_string_literal: true

module RedmineRag
  module Patches
    # Issues are versioned by their lock_version (Redmine's optimistic lock).
    # A change of what an issue's notes carry too (project, tracker, privacy,
    # author, assignee, open/closed) bumps the issue_access counter, the high
    # part of its notes' versions, and sends the notes again.
    module IssuePatch
      extend ActiveSupport::Concern
      include SyncCallbacks

      ACCESS_FIELDS = %w[project_id tracker_id is_private author_id assigned_to_id].freeze

      private

      def redmine_rag_saved
        @redmine_rag_dirty = true
        return if previously_new_record? # no notes yet
        return unless saved_changes.keys.intersect?(ACCESS_FIELDS) || redmine_rag_open_state_changed?

        DocVersion.bump("issue_access:#{id}")
        @redmine_rag_cascade = true
      end

      def redmine_rag_open_state_changed?
        return false unless saved_change_to_status_id?

        was = IssueStatus.find_by(id: status_id_before_last_save)
        was&.is_closed? != status&.is_closed?
      end

      def redmine_rag_destroying
        @redmine_rag_tombstone = Documents.kind('issue').tombstone_version(self, {})
      end

      def redmine_rag_committed
        if destroyed?
          Sync.enqueue_delete("issue:#{id}" => @redmine_rag_tombstone) if @redmine_rag_tombstone
        elsif @redmine_rag_dirty
          Sync.enqueue_index('issue', [id], cascade: @redmine_rag_cascade ? true : false)
        end
      ensure
        @redmine_rag_dirty = @redmine_rag_cascade = @redmine_rag_tombstone = nil
      end
    end
  end
end
