# frozen_string_literal: true

module RedmineRag
  # Per-request state (reset by Rails after every request): how the search page
  # was answered, for the notice on the page and the X-Redmine-Rag header.
  class Current < ActiveSupport::CurrentAttributes
    # :ragd (ragd ranked the results), :fallback (ragd unavailable or too slow:
    # Redmine's own search answered) or nil (the plugin was not involved).
    attribute :search_outcome, :search_detail
    # { project_ids:, types: } of a ragd search whose query is a question
    # (ragd flagged it `complex`): the scope of the "Ask" box.
    attribute :answer_scope
  end
end
