# frozen_string_literal: true

module RedmineRag
  # Versioned deletes of destroyed records: { doc_id => version }.
  class DeleteJob < SyncJob
    def perform(versions)
      Sync.delete(versions)
    end

    def doc_ids = arguments.first.keys
  end
end
