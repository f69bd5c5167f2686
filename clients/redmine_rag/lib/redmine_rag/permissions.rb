# frozen_string_literal: true

module RedmineRag
  # The ragd search filter for a user: Redmine decides. Built by the gem's
  # Ragd::Redmine.filter_for from the user's roles, memberships, groups and the
  # projects' modules (the permission grants: issues visibility all/default/own,
  # tracker limits, view_private_notes, and view permissions of the wiki, news,
  # forums and documents modules).
  module Permissions
    module_function

    # The filter for `types` in `projects` (a Project, an Array, or nil for every
    # project), or nil when the user may see none of it: then ragd is not called.
    def filter(user, projects, types)
      require 'ragd/redmine'
      types = searchable(types)
      return nil if types.empty?

      projects = Array(projects) unless projects.nil?
      return nil if projects&.empty?

      Grants.filter(user, projects, types)
    end

    # Document type names (strings) ragd filters on.
    def searchable(types) = Array(types).map(&:to_s)

    # Redmine's own `visible` scope of a ragd document type: what Redmine shows
    # the user (notes: Journal.visible, private notes included where allowed).
    def visible_records(type, user)
      case type.to_s
      when 'issue' then Issue.visible(user)
      when 'journal' then Journal.visible(user).where(journalized_type: 'Issue')
      when 'wiki' then WikiPage.joins(wiki: :project).where(Project.allowed_to_condition(user, :view_wiki_pages))
      when 'news' then News.visible(user)
      when 'message' then Message.visible(user)
      when 'document' then Document.visible(user)
      else raise ArgumentError, "not a ragd document type: #{type.inspect}"
      end
    end
  end
end
