# frozen_string_literal: true

module RedmineRag
  # After the indexed types or the excluded projects change: what `rake
  # redmine_rag:reindex PRUNE=1` does, in the background (cheap when nothing
  # differs: only missing, stale and extra documents are touched).
  class ReconcileJob < SyncJob
    def perform
      Reindexer.new(prune: true).run
    end
  end
end
