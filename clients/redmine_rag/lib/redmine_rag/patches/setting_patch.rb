# frozen_string_literal: true

module RedmineRag
  module Patches
    # The plugin's own settings saved with other indexed types or excluded
    # projects: reconcile ragd in the background (index what is now in, delete
    # what is now out).
    module SettingPatch
      extend ActiveSupport::Concern

      included do
        after_commit :redmine_rag_settings_changed, on: %i[create update]
      end

      private

      def redmine_rag_settings_changed
        return unless name == 'plugin_redmine_rag' && saved_change_to_value?

        before, after = saved_change_to_value.map { |raw| redmine_rag_settings(raw) }
        return if before.index_types == after.index_types && before.excluded_project_ids == after.excluded_project_ids

        Sync.enqueue { ReconcileJob.perform_later }
      rescue StandardError => e
        RedmineRag.log(:error, "could not compare the plugin settings: #{e.message}")
      end

      # The stored (serialized) value as Settings, read the way Setting#value reads it.
      def redmine_rag_settings(raw)
        copy = Setting.new(name: name)
        copy[:value] = raw
        Settings.new(copy.value)
      end
    end
  end
end
