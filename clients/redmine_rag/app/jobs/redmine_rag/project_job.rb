# frozen_string_literal: true

module RedmineRag
  # A deleted project: everything ragd still holds of it goes.
  class ProjectJob < SyncJob
    def perform(project_id)
      Sync.purge_project(project_id)
    end

    def doc_ids = ["project:#{arguments.first}"]
  end
end
