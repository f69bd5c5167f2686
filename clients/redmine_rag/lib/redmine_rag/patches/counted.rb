# frozen_string_literal: true

module RedmineRag
  module Patches
    # Callbacks of a record whose document is versioned by a DocVersion counter
    # (journals, wiki pages, news, messages, documents). The including model
    # answers redmine_rag_type and redmine_rag_fields (the columns its document
    # is made of), and may refine redmine_rag_document?.
    # A change of those columns bumps the record's counter, so the version
    # grows with the state (hooks: SyncCallbacks).
    module Counted
      extend ActiveSupport::Concern
      include SyncCallbacks

      private

      def redmine_rag_kind = Documents.kind(redmine_rag_type)
      def redmine_rag_keys = redmine_rag_kind.keys(*redmine_rag_kind.key_columns.map { |c| self[c] })
      def redmine_rag_document? = true

      def redmine_rag_saved
        return unless redmine_rag_document?
        return unless previously_new_record? || saved_changes.keys.intersect?(redmine_rag_fields)

        DocVersion.bump(redmine_rag_keys.last) unless previously_new_record?
        @redmine_rag_dirty = true
      end

      def redmine_rag_destroying
        return unless redmine_rag_document?

        @redmine_rag_tombstone = redmine_rag_kind.tombstone_version(self, DocVersion.values(redmine_rag_keys))
      end

      def redmine_rag_committed
        if destroyed?
          Sync.enqueue_delete(redmine_rag_kind.doc_id(id) => @redmine_rag_tombstone) if @redmine_rag_tombstone
        elsif @redmine_rag_dirty
          Sync.enqueue_index(redmine_rag_type, [id])
        end
      ensure
        @redmine_rag_dirty = @redmine_rag_tombstone = nil
      end
    end
  end
end
