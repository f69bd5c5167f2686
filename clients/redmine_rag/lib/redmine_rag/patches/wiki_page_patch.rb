# frozen_string_literal: true

module RedmineRag
  module Patches
    # Wiki pages: renamed or moved to another wiki (its content has its own patch).
    module WikiPagePatch
      extend ActiveSupport::Concern
      include Counted

      private

      def redmine_rag_type = 'wiki'
      def redmine_rag_fields = %w[title wiki_id]
    end
  end
end
