# frozen_string_literal: true

require 'ragd/client'

module RedmineRag
  # Base of the plugin's jobs (queue `rag`). ragd unavailable or busy
  # (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) is transient: the job
  # is retried with exponential backoff (3 s, 18 s, 83 s, ... about 9 hours in
  # all), and meanwhile its documents show as `retrying` on the status page. When
  # the retries run out they show as `gave_up`: `rake redmine_rag:reindex`
  # repairs. Anything else is a bug and fails the job as usual.
  #
  # Redmine sets no queue adapter, so production runs Rails' in-process :async
  # adapter, which loses queued jobs on restart; see the README for a durable
  # one (Debian's ruby-sidekiq or ruby-delayed-job).
  class SyncJob < ActiveJob::Base
    queue_as :rag
    TRANSIENT = [Ragd::Unavailable, Ragd::ResourceExhausted].freeze

    retry_on(*TRANSIENT, wait: :exponentially_longer, attempts: 12) do |job, error|
      job.note_backlog('gave_up', error)
    end

    around_perform do |job, block|
      block.call
    rescue *TRANSIENT => e
      job.note_backlog('retrying', e)
      raise
    end

    # The documents this job writes (for the backlog shown on the status page).
    def doc_ids = []

    def note_backlog(state, error)
      RedmineRag.log(:warn, "#{self.class.name} #{state} (attempt #{executions}): #{error.message}")
      doc_ids.each { |id| Failure.record!(id, state: state, reason: "#{error.class.name}: #{error.message}") }
    end
  end
end
