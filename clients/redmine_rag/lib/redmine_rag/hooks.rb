# frozen_string_literal: true

module RedmineRag
  # View hooks (partials under app/views, named after where they render).
  class Hooks < Redmine::Hook::ViewListener
    render_on :view_layouts_base_html_head, partial: 'redmine_rag/html_head'
    render_on :view_layouts_base_content, partial: 'redmine_rag/search_notice'
    render_on :view_issues_show_description_bottom, partial: 'redmine_rag/similar_issues_placeholder'
    render_on :view_issues_new_top, partial: 'redmine_rag/duplicates_placeholder'
  end
end
