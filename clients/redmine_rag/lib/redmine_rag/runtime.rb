# frozen_string_literal: true

module RedmineRag
  # Time a request spent on ragd, for Rails' log line, the way ActiveRecord
  # reports its own: "Completed 200 OK in 180ms (Views: 40.1ms | ActiveRecord:
  # 12.0ms | ragd: 31.2ms, grants: 0.0ms | ...)". `ragd` is the time of the calls
  # to the daemon as the plugin waited for them (the search page runs its call
  # beside Redmine's own search for the other types); `grants` the time spent
  # building permission filters (0 when they came from the cache, Grants).
  module Runtime
    KINDS = %i[ragd grants].freeze

    module_function

    # Runs the block, adding its wall time (ms) to `kind` of this thread's request.
    def measure(kind)
      t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      yield
    ensure
      add(kind, (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0) * 1000)
    end

    def add(kind, millis)
      times = (Thread.current[:redmine_rag_runtime] ||= Hash.new(0.0))
      times[kind] += millis
    end

    # This thread's times since the last call, and a fresh start.
    def take = Thread.current[:redmine_rag_runtime].tap { Thread.current[:redmine_rag_runtime] = nil }

    # Included into ActionController::Base (see Patches.apply).
    module ControllerRuntime
      extend ActiveSupport::Concern

      module ClassMethods
        def log_process_action(payload)
          messages = super
          times = payload[:redmine_rag]
          messages << KINDS.map { |k| format('%<k>s: %<ms>.1fms', k: k, ms: times[k]) }.join(', ') if times
          messages
        end
      end

      private

      def process_action(*)
        Runtime.take # nothing from an earlier request of this thread
        super
      end

      def append_info_to_payload(payload)
        super
        times = Runtime.take
        payload[:redmine_rag] = times if times
      end
    end
  end
end
