# frozen_string_literal: true

module RedmineRag
  # Where the plugin hooks into Redmine. Idempotent: to_prepare may run more than once.
  module Patches
    MODELS = {
      'Issue' => 'IssuePatch', 'Journal' => 'JournalPatch', 'WikiPage' => 'WikiPagePatch',
      'WikiContent' => 'WikiContentPatch', 'News' => 'NewsPatch', 'Message' => 'MessagePatch',
      'Document' => 'DocumentPatch', 'Project' => 'ProjectPatch', 'Setting' => 'SettingPatch',
      'SearchController' => 'SearchControllerPatch'
    }.freeze

    # What Ragd::Redmine.filter_for reads: a commit of any of them renews the cached filters.
    GRANT_MODELS = %w[Member MemberRole Role Project EnabledModule Principal].freeze

    def self.apply
      MODELS.each do |model, patch|
        klass = model.constantize
        mod = const_get(patch)
        klass.include(mod) unless klass.include?(mod)
      end
      ActionController::Base.include(Runtime::ControllerRuntime) unless ActionController::Base <= Runtime::ControllerRuntime
      GRANT_MODELS.each { |model| model.constantize.include(GrantsPatch) unless model.constantize.include?(GrantsPatch) }
      Redmine::Search::Fetcher.prepend(FetcherPatch) unless Redmine::Search::Fetcher <= FetcherPatch
      Hooks # registers the view hooks
    end
  end
end
