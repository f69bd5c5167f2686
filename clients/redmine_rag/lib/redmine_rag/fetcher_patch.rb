# frozen_string_literal: true

module RedmineRag
  # Prepended to Redmine::Search::Fetcher, which SearchController (the search
  # page and /search.json) asks for ranked result ids and then for a page of
  # results. The ids come from ragd (RedmineRag::SearchPage) unless it declines;
  # the results of a page carry ragd's best passage as their description.
  module FetcherPatch
    def results(offset, limit)
      records = super
      snippets = redmine_rag_snippets
      return records if snippets.blank?

      records.each do |record|
        snippet = snippets[[record.class.name.underscore.pluralize, record.id]]
        record.extend(SearchSnippet).redmine_rag_snippet = snippet if snippet
      end
    end

    private

    def load_result_ids
      page = SearchPage.new(question: @question, user: @user, scope: @scope, projects: @projects,
                            tokens: @tokens, options: @options)
      ids = page.call
      return super if ids.nil?

      @redmine_rag_snippets = page.snippets
      Redmine::Search.cache_store&.write(redmine_rag_snippets_key, page.snippets)
      ids
    end

    # Pages after the first come from Redmine's result cache, so do their snippets.
    def redmine_rag_snippets
      @redmine_rag_snippets ||= Redmine::Search.cache_store&.read(redmine_rag_snippets_key)
    end

    def redmine_rag_snippets_key
      ActiveSupport::Cache.expand_cache_key(['redmine_rag', @question, @user.id, @scope.sort, @options, project_ids.sort])
    end
  end

  # A search result whose description is ragd's best passage of it.
  module SearchSnippet
    attr_accessor :redmine_rag_snippet

    def event_description = redmine_rag_snippet.text
  end
end
