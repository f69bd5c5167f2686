# frozen_string_literal: true

module RedmineRag
  # What the similar-issues panel and the duplicate suggestions share.
  module Similarity
    module_function

    # Projects ragd may be asked about (nil: all of them).
    def searchable_projects(settings)
      excluded = settings.excluded_project_ids
      excluded.empty? ? nil : Project.where.not(id: excluded).to_a
    end

    # Issues already tied to this one: relations, parent and children.
    def related_ids(issue)
      ids = issue.relations.flat_map { |r| [r.issue_from_id, r.issue_to_id] }
      ids << issue.parent_id if issue.parent_id
      ids.concat(issue.children.pluck(:id))
      (ids.compact.uniq - [issue.id])
    end

    # [[issue, score], ...] in ragd's order, only issues Redmine shows the user
    # now (the index follows the job queue: a change of a moment ago may lag).
    def visible_issues(hits, user)
      scores = {}
      hits.each do |h|
        type, id = Documents.parse_id(h.document_id)
        scores[id] ||= h.score if type == 'issue'
      end
      issues = Issue.visible(user).where(id: scores.keys).preload(:project, :status, :tracker).index_by(&:id)
      scores.filter_map { |id, score| [issues[id], score] if issues[id] }
    end
  end
end
