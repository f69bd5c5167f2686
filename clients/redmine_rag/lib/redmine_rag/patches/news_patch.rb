# frozen_string_literal: true

module RedmineRag
  module Patches
    module NewsPatch
      extend ActiveSupport::Concern
      include Counted

      private

      def redmine_rag_type = 'news'
      def redmine_rag_fields = %w[title summary description project_id]
    end
  end
end
