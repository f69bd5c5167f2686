# frozen_string_literal: true

module RedmineRag
  # The "Similar issues" panel of the issue page (loaded after the page): the
  # issues closest to this one that the viewer may see, without the issue
  # itself and the issues already related to it, each with its score.
  class SimilarIssuesController < ApplicationController
    before_action :find_visible_issue
    accept_api_auth :show

    def show
      @similar = []
      lookup if RedmineRag.settings.similar_enabled?
      respond_to do |format|
        format.html { render partial: 'redmine_rag/similar_issues' }
        format.json { render json: { issues: @similar.map { |i, s| { id: i.id, subject: i.subject, score: s } } } }
      end
    end

    private

    def find_visible_issue
      @issue = Issue.visible.find_by(id: params[:id])
      render_404 unless @issue
    end

    def lookup
      settings = RedmineRag.settings
      filter = Permissions.filter(User.current, Similarity.searchable_projects(settings), %w[issue])
      return unless filter

      filter.exclude_ids = Similarity.related_ids(@issue).map { |id| "issue:#{id}" }
      result = Runtime.measure(:ragd) do
        RedmineRag.client.similar("issue:#{@issue.id}", top_k: settings.similar_count, filter: filter,
                                                        timeout: settings.search_timeout)
      end
      @similar = Similarity.visible_issues(result.hits, User.current)
    rescue Ragd::NotFound
      @not_indexed = true
    rescue Ragd::Error => e
      RedmineRag.log(:warn, "similar issues of ##{@issue.id} unavailable: #{e.message}")
      @unavailable = true
    end
  end
end
