# frozen_string_literal: true

module RedmineRag
  module Patches
    # Says which engine answered a search, for API clients and monitoring:
    # X-Redmine-Rag: ragd (ragd ranked it) or fallback (ragd unavailable or too
    # slow: Redmine's own search answered). Absent when the plugin stayed out.
    module SearchControllerPatch
      extend ActiveSupport::Concern

      included do
        after_action :redmine_rag_header, only: :index
      end

      private

      def redmine_rag_header
        outcome = Current.search_outcome
        response.headers['X-Redmine-Rag'] = outcome.to_s if outcome
      end
    end
  end
end
