# frozen_string_literal: true

module RedmineRag
  # Duplicate suggestions for the new-issue form, asked for while the subject
  # and description are typed (debounced by redmine_rag.js): issues of the
  # project (and its subprojects) the user may see, close to the text so far.
  # Short text gets no lookup; ragd unavailable gets an empty answer, never an
  # error: suggestions are a courtesy, the form must stay fast.
  class DuplicatesController < ApplicationController
    before_action :find_project
    # Redmine records the project as "recently used" after every request that set @project
    # (a preference read, and a write when the order changes); the form asking for
    # suggestions already did, and these requests come once per pause in typing.
    skip_after_action :record_project_usage
    accept_api_auth :index

    def index
      settings = RedmineRag.settings
      subject = params[:subject].to_s.strip
      @duplicates = []
      if settings.duplicates_enabled? && subject.length >= settings.duplicates_min_chars
        @duplicates = lookup(settings, [subject, params[:description].to_s.strip[0, 1000]].reject(&:empty?).join("\n"))
      end
      respond_to do |format|
        format.html { render partial: 'redmine_rag/duplicates' }
        format.json { render json: { issues: @duplicates.map { |i, s| { id: i.id, subject: i.subject, score: s } } } }
      end
    end

    private

    # The form sends the project's id; API clients may send its identifier. One query either way.
    def find_project
      id = params[:project_id].to_s
      @project = Project.visible.find_by(/\A\d+\z/.match?(id) ? { id: id } : { identifier: id })
      return render_404 unless @project

      deny_access unless User.current.allowed_to?(:view_issues, @project)
    end

    def lookup(settings, text)
      projects = @project.self_and_descendants.to_a.select { |p| settings.project_enabled?(p.id) }
      filter = Permissions.filter(User.current, projects, %w[issue])
      return [] unless filter

      filter.exclude_ids = ["issue:#{params[:issue_id].to_i}"] if params[:issue_id].present?
      result = Runtime.measure(:ragd) do
        RedmineRag.client.search(text, top_k: settings.duplicates_count, filter: filter, mode: :vector,
                                       group_by_document: true, min_score: settings.duplicates_min_score,
                                       timeout: settings.search_timeout)
      end
      Similarity.visible_issues(result.hits, User.current)
    rescue Ragd::Error => e
      RedmineRag.log(:warn, "duplicate suggestions unavailable: #{e.message}")
      []
    end
  end
end
