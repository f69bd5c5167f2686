# frozen_string_literal: true

# rake redmine_rag:reindex [PROJECT=identifier] [TYPES=issue,journal,wiki,news,message,document] [PRUNE=1]
# rake redmine_rag:status  [PROJECT=identifier] [TYPES=...] [STRICT=1]
# rake redmine_rag:prune   [PROJECT=identifier] [TYPES=...]
require 'ragd/client' # Ragd::Unavailable in the rescue clauses, whatever loaded first

namespace :redmine_rag do
  scope = lambda do
    types = ENV['TYPES'].to_s.split(',').map(&:strip).reject(&:empty?).presence
    if types
      unknown = types - RedmineRag::Documents::TYPES
      abort "TYPES: unknown #{unknown.join(', ')} (known: #{RedmineRag::Documents::TYPES.join(', ')})" if unknown.any?
      off = types - RedmineRag.settings.index_types
      abort "TYPES: #{off.join(', ')} not indexed (plugin settings: #{RedmineRag.settings.index_types.join(', ')})" if off.any?
    end
    project_ids = nil
    if ENV['PROJECT'].present?
      project = Project.find_by(identifier: ENV['PROJECT']) || Project.find_by(id: ENV['PROJECT'].to_i)
      abort "PROJECT: no project #{ENV['PROJECT'].inspect}" unless project
      project_ids = [project.id]
    end
    { types: types, project_ids: project_ids }
  end

  desc 'Send what ragd is missing or holds stale (PRUNE=1: also delete what Redmine no longer has)'
  task reindex: :environment do
    opts = scope.call
    summary = RedmineRag::Reindexer.new(**opts, prune: ENV['PRUNE'] == '1', out: $stdout).run
    puts summary
    summary.failed.first(20).each { |id, reason| puts "  failed #{id}: #{reason}" }
  rescue Ragd::Unavailable => e
    abort "ragd unavailable: #{e.message} (nothing lost: run the task again when ragd is up)"
  end

  desc 'Compare Redmine with ragd per project and type (STRICT=1: exit 1 unless in sync)'
  task status: :environment do
    report = RedmineRag::StatusReport.new(**scope.call).load
    puts report.to_text
    exit 1 if ENV['STRICT'] == '1' && !(report.inventory&.in_sync? && report.failures.empty?)
  end

  desc 'Delete from ragd what Redmine no longer has'
  task prune: :environment do
    inv = RedmineRag::Inventory.new(**scope.call).load
    extra = inv.extra
    RedmineRag::Indexer.new.delete(extra.to_h { |e| [e.id, e.version] })
    puts "#{extra.size} pruned"
  end
end
