# frozen_string_literal: true

module RedmineRag
  # A change counter per document key ("journal:12", "issue_access:7", ...).
  #
  # Why: ragd ignores a write older than the stored version, so that a retried
  # or reordered job can never bring back old text or old permissions. That
  # needs a version that grows with every change of what a document carries,
  # and Redmine has one only for issues (lock_version): a journal note edited or
  # made private, a wiki page renamed, a news item edited change no counter. So
  # the plugin bumps one here, inside the transaction that makes the change, and
  # a job reads the counters *before* the records: whatever state it then reads
  # is at least as new as its version, and the job of the last change reads the
  # last state with the highest version. See RedmineRag::Documents for how the
  # counters make each document's version.
  class DocVersion < ActiveRecord::Base
    self.table_name = 'redmine_rag_doc_versions'

    # Adds one to the counter of `key`, inside the caller's transaction.
    def self.bump(key)
      return if where(doc_key: key).update_all('value = value + 1').positive?

      # First change of this key: insert, in a savepoint so that a concurrent
      # insert (unique index) cannot abort the caller's transaction.
      transaction(requires_new: true) { create!(doc_key: key, value: 1) }
    rescue ActiveRecord::RecordNotUnique
      where(doc_key: key).update_all('value = value + 1')
    end

    # { key => counter } for the keys (0 for a key never bumped).
    def self.values(keys)
      keys = keys.uniq
      found = keys.each_slice(500).flat_map { |slice| where(doc_key: slice).pluck(:doc_key, :value) }.to_h
      keys.index_with { |k| found.fetch(k, 0) }
    end

    def self.value(key) = values([key])[key]

    # Counters of every key with this prefix ("journal:"), for whole-table scans.
    def self.with_prefix(prefix)
      pattern = "#{sanitize_sql_like(prefix, '\\')}%"
      pairs = where("doc_key LIKE ? ESCAPE '\\'", pattern).pluck(:doc_key, :value).to_h
      pairs.transform_keys { |k| k.delete_prefix(prefix).to_i }
    end
  end
end
