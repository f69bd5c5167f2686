# frozen_string_literal: true

module RedmineRag
  module Patches
    # Forum messages (topics and replies), moved between boards too.
    module MessagePatch
      extend ActiveSupport::Concern
      include Counted

      private

      def redmine_rag_type = 'message'
      def redmine_rag_fields = %w[subject content board_id]
    end
  end
end
