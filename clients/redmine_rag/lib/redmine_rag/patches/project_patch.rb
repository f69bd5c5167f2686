# frozen_string_literal: true

module RedmineRag
  module Patches
    # A deleted project: its records' own callbacks delete their documents one by
    # one; this purges whatever else ragd holds of the project. Archiving,
    # closing or turning a module off changes no document: the search filter is
    # built from Redmine's permissions at query time, which already leave those
    # projects out, and nothing needs reindexing when they come back.
    module ProjectPatch
      extend ActiveSupport::Concern

      included do
        after_commit :redmine_rag_purge, on: :destroy
      end

      private

      def redmine_rag_purge = Sync.enqueue_project_purge(id)
    end
  end
end
