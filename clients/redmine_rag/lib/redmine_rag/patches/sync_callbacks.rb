# frozen_string_literal: true

module RedmineRag
  module Patches
    # The three hooks every indexed model registers; the including module
    # defines what they do (Counted for counter-versioned records, IssuePatch
    # for issues, which are versioned by lock_version).
    #
    # after_save (inside the transaction): note the change and bump versions;
    # before_destroy (first, while associations are still there): the version
    #   of the tombstone;
    # after_commit: the job, once the change is visible to other connections.
    module SyncCallbacks
      extend ActiveSupport::Concern

      included do
        after_save :redmine_rag_saved
        before_destroy :redmine_rag_destroying, prepend: true
        after_commit :redmine_rag_committed
      end
    end
  end
end
