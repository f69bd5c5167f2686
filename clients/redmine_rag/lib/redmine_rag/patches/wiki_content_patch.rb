# frozen_string_literal: true

module RedmineRag
  module Patches
    # A wiki page's text: every save increments WikiContent#version (its
    # optimistic lock), which is the high part of the page's document version.
    module WikiContentPatch
      extend ActiveSupport::Concern

      included do
        after_commit :redmine_rag_committed, on: %i[create update]
      end

      private

      def redmine_rag_committed = Sync.enqueue_index('wiki', [page_id])
    end
  end
end
