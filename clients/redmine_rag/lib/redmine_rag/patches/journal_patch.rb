# frozen_string_literal: true

module RedmineRag
  module Patches
    # Issue notes: a note written, edited, emptied or made private (a journal
    # without notes, such as a status change alone, is not a document).
    module JournalPatch
      extend ActiveSupport::Concern
      include Counted

      private

      def redmine_rag_type = 'journal'
      def redmine_rag_fields = %w[notes private_notes]

      def redmine_rag_document?
        return false unless journalized_type == 'Issue'

        notes.present? || notes_before_last_save.present?
      end
    end
  end
end
