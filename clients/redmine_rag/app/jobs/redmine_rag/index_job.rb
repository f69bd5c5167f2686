# frozen_string_literal: true

module RedmineRag
  # Sends the current state of records of one type (and, with cascade, the
  # notes of issues whose permissions or state changed).
  class IndexJob < SyncJob
    def perform(type, ids, cascade: false)
      Sync.index(type, ids, cascade: cascade)
    end

    def doc_ids
      type, ids, = arguments
      Array(ids).map { |id| Documents.kind(type).doc_id(id) }
    end
  end
end
