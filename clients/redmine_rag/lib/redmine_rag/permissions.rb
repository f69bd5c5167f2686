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

      if Compat.grants?
        Ragd::Redmine.filter_for(user, projects, types: types)
      else
        legacy_filter(user, projects, types)
      end
    end

    # The types ragd can filter exactly for the installed gem.
    def searchable(types)
      types = Array(types).map(&:to_s)
      Compat.grants? ? types : types & %w[issue journal]
    end

    # A gem without grants: its older filter, for issues and notes only (it may
    # hide a document Redmine would show, never the reverse).
    def legacy_filter(user, projects, types)
      projects ||= Project.where(Project.allowed_to_condition(user, :view_issues)).to_a
      flt = Ragd::Redmine.filter_for(user, projects)
      flt&.types = types
      flt
    end
  end
end
