# frozen_string_literal: true

# Two small tables of the plugin's own:
# - redmine_rag_doc_versions: a change counter per document key, bumped in the
#   same transaction as the change it counts, so the version a job sends to ragd
#   always grows with the state it read (see RedmineRag::DocVersion);
# - redmine_rag_failures: documents ragd refused (with the reason) and writes
#   waiting for a retry, for the status page and `rake redmine_rag:status`.
class CreateRedmineRagTables < ActiveRecord::Migration[6.1]
  def change
    create_table :redmine_rag_doc_versions do |t|
      t.string :doc_key, null: false, limit: 255
      t.bigint :value, null: false, default: 0
    end
    add_index :redmine_rag_doc_versions, :doc_key, unique: true

    create_table :redmine_rag_failures do |t|
      t.string :doc_id, null: false, limit: 255
      t.string :doc_type, null: false, limit: 32
      t.integer :project_id
      t.string :state, null: false, limit: 16
      t.text :reason
      t.integer :attempts, null: false, default: 1
      t.timestamps null: false
    end
    add_index :redmine_rag_failures, :doc_id, unique: true
    add_index :redmine_rag_failures, %i[state updated_at]
  end
end
