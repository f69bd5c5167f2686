# frozen_string_literal: true

module RedmineRag
  module Patches
    module DocumentPatch
      extend ActiveSupport::Concern
      include Counted

      private

      def redmine_rag_type = 'document'
      def redmine_rag_fields = %w[title description category_id project_id]
    end
  end
end
