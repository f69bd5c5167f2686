# frozen_string_literal: true

module RedmineRag
  # Keeping ragd in step with Redmine, one change at a time: what the model
  # callbacks enqueue (RedmineRag::IndexJob, DeleteJob, ProjectJob) and what
  # those jobs do. Jobs carry ids and versions, never texts: a job reads the
  # records when it runs, so a late job sends the current state.
  module Sync
    module_function

    # Model callbacks call these after commit. Enqueueing must never fail a
    # save that already committed: errors are logged (the reindex task repairs).
    def enqueue_index(type, ids, cascade: false)
      return if suspended? || !RedmineRag.settings.indexes?(type)

      enqueue { IndexJob.perform_later(type, Array(ids), cascade: cascade) }
    end

    def enqueue_delete(versions)
      return if suspended? || versions.empty?

      enqueue { DeleteJob.perform_later(versions.transform_keys(&:to_s)) }
    end

    def enqueue_project_purge(project_id)
      return if suspended?

      enqueue { ProjectJob.perform_later(project_id) }
    end

    def enqueue
      yield
    rescue StandardError => e
      RedmineRag.log(:error, "could not queue a ragd sync job (#{e.class}: #{e.message}); " \
                             '`rake redmine_rag:reindex` will repair')
    end

    # No per-record jobs inside the block (bulk loads that reindex afterwards).
    def suspended
      was = Thread.current[:redmine_rag_suspended]
      Thread.current[:redmine_rag_suspended] = true
      yield
    ensure
      Thread.current[:redmine_rag_suspended] = was
    end

    def suspended? = Thread.current[:redmine_rag_suspended] ? true : false

    # The job's work: the current state of these records, sent. Records gone
    # since (destroyed) are left to their DeleteJob; a type not indexed is
    # skipped (the settings change purges it); a record that is no longer a
    # document (a note emptied) or now lies in an excluded project (moved
    # there) is deleted at its current version.
    def index(type, ids, cascade: false, indexer: Indexer.new)
      settings = RedmineRag.settings
      kind = Documents.kind(type)
      outcome = nil
      if settings.indexes?(type)
        records, counters = kind.find_batch(ids)
        docs = []
        gone = {}
        records.each do |record|
          doc = kind.document(record, counters)
          doc = nil if doc && !settings.project_enabled?(doc[:project_id])
          doc ? docs << doc : gone[kind.doc_id(record.id)] = kind.version(record, counters)
        end
        outcome = indexer.upsert(docs) unless docs.empty?
        indexer.delete(gone)
      end
      index_journals_of(ids, indexer) if cascade && type == 'issue'
      outcome
    end

    # An issue's project, tracker, privacy, owners or open state changed: its
    # notes carry those, so they are sent again.
    def index_journals_of(issue_ids, indexer)
      return unless RedmineRag.settings.indexes?('journal')

      Documents.kind('journal').scope.where(journalized_id: issue_ids)
               .where(Documents.kind('journal').indexable_condition)
               .pluck("#{::Journal.table_name}.id").each_slice(100) { |ids| index('journal', ids, indexer: indexer) }
    end

    def delete(versions, indexer: Indexer.new) = indexer.delete(versions)

    # A project deleted: whatever ragd still holds of it goes, versioned above
    # what is stored so a late job cannot bring it back.
    def purge_project(project_id, indexer: Indexer.new)
      versions = RedmineRag.client.list_documents(project_ids: [project_id]).to_h { |d| [d.id, d.version + 1] }
      indexer.delete(versions)
      versions.size
    end
  end
end
