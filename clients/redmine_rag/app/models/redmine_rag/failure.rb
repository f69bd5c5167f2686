# frozen_string_literal: true

module RedmineRag
  # Documents that did not reach ragd: `refused` (ragd said no, with its reason:
  # they stay out until they change), `retrying` (ragd was unavailable or busy;
  # the job retries with backoff) and `gave_up` (the retries ran out: the reindex
  # task is the recovery). A later successful write of the document clears it.
  class Failure < ActiveRecord::Base
    self.table_name = 'redmine_rag_failures'
    STATES = %w[refused retrying gave_up].freeze

    scope :recent, -> { order(updated_at: :desc) }

    def self.record!(doc_id, state:, reason:, project_id: nil)
      reason = reason.to_s.truncate(2000)
      type = doc_id.to_s.split(':', 2).first.to_s
      row = find_or_initialize_by(doc_id: doc_id)
      row.attempts = row.new_record? ? 1 : row.attempts + 1
      row.assign_attributes(state: state, reason: reason, doc_type: type, project_id: project_id)
      row.save!
    rescue ActiveRecord::RecordNotUnique
      retry
    end

    # Called after every successful write: a read first, so the common case
    # (nothing failed) takes no write lock (SQLite has one for the database).
    def self.clear!(doc_ids)
      return if doc_ids.empty? || !exists?

      doc_ids.each_slice(500) { |slice| where(doc_id: slice).delete_all }
    end

    def self.counts = group(:state).count
  end
end
