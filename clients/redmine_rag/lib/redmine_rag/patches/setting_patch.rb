# frozen_string_literal: true

module RedmineRag
  module Patches
    # The plugin's own settings saved with other indexed types or excluded
    # projects: reconcile ragd in the background (index what is now in, delete
    # what is now out).
    module SettingPatch
      extend ActiveSupport::Concern

      included do
        before_save :redmine_rag_keep_token
        after_commit :redmine_rag_settings_changed, on: %i[create update]
      end

      private

      # The token is write-only: the settings page never shows it, so a save with the field
      # left empty keeps the stored token; `token_clear` (a checkbox) removes it.
      def redmine_rag_keep_token
        return unless name == 'plugin_redmine_rag'

        values = value
        return unless values.respond_to?(:to_h)

        values = values.to_h.transform_keys(&:to_s)
        clear = %w[1 true].include?(values.delete('token_clear').to_s)
        if values['token'].to_s.strip.empty? && !clear && persisted?
          values['token'] = redmine_rag_settings(attribute_in_database(:value))['token'].to_s
        end
        values['token'] = '' if clear
        self.value = values
      end

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
