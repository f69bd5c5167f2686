# frozen_string_literal: true

module RedmineRag
  # The "Ask" box of the search page: ragd's Answer RPC (an answer generated
  # from the passages the user may see, citing them as [n]).
  #
  # Offered only for a question (ragd's AUTO search flagged it `complex`) on a
  # search page ragd answered, and only while the daemon has an answer model:
  # FAILED_PRECONDITION (no answer.model_url) hides the box in this process for
  # NO_MODEL_RECHECK seconds, after which one question asks again.
  #
  # Exact about permissions twice over: ragd retrieves only passages the
  # user's filter admits, and the plugin checks every passage against Redmine's
  # own `visible` scopes before a word of the answer is shown (the index follows
  # the job queue, so a record changed a moment ago may still carry its old
  # permissions there): one passage Redmine would hide stops the answer.
  module Answering
    NO_MODEL_RECHECK = 600 # seconds
    Link = Struct.new(:title, :url, keyword_init: true)

    @no_model = {} # connection key -> monotonic time until which the box stays hidden
    @lock = Mutex.new

    module_function

    def offered?(settings)
      return false unless settings.search_enabled? && settings.answer_enabled?

      until_t = @lock.synchronize { @no_model[settings.connection_key] }
      until_t.nil? || until_t < now
    end

    def no_model!(settings)
      @lock.synchronize { @no_model[settings.connection_key] = now + NO_MODEL_RECHECK }
    end

    def model_back!(settings) = @lock.synchronize { @no_model.delete(settings.connection_key) }

    def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

    # Ragd::Hits (the passages given to the model) -> a Link per passage, in
    # order ([n] is links[n - 1]; url: url_for options), or nil when Redmine would hide one of them
    # from the user: then nothing of the answer may be shown.
    def links(passages, user)
      keys = passages.map { |hit| Documents.parse_id(hit.document_id) }
      records = keys.group_by(&:first).to_h do |type, list|
        [type, Permissions.visible_records(type, user).where(id: list.map(&:last)).index_by(&:id)]
      end
      keys.map do |type, id|
        record = records.dig(type, id)
        return nil unless record

        url = record.event_url
        # Absolute controller names: a namespaced controller would resolve 'issues' as 'redmine_rag/issues'.
        Link.new(title: record.event_title, url: url.merge(controller: "/#{url[:controller]}", only_path: true))
      end
    end
  end
end
