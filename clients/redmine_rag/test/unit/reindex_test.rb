# frozen_string_literal: true

require File.expand_path('../test_helper', __dir__)
require 'rake'

# Backfill and repair: rake redmine_rag:reindex / status / prune against the
# real daemon, on Redmine's fixtures.
class RedmineRag::ReindexTest < ActiveSupport::TestCase
  include RedmineRag::TestHelper
  fixtures(*RedmineRag::TestHelper::FIXTURES)

  def setup
    rag_settings
    self.class.load_tasks
  end

  def self.load_tasks
    @load_tasks ||= Rails.application.load_tasks
  end

  def expected_ids = RedmineRag::Inventory.new.load.expected.keys.sort

  def run_task(name, env = {})
    out = StringIO.new
    saved = env.to_h { |k, _| [k, ENV.fetch(k, nil)] }
    env.each { |k, v| ENV[k] = v }
    $stdout = out
    Rake::Task[name].reenable
    Rake::Task[name].invoke
    out.string
  ensure
    $stdout = STDOUT
    saved.each { |k, v| ENV[k] = v }
  end

  def test_reindex_sends_what_is_missing_and_a_rerun_sends_nothing
    progress = StringIO.new
    summary = RedmineRag::Reindexer.new(out: progress).run
    ids = expected_ids
    assert_operator ids.size, :>=, 40, 'issues, notes, wiki pages, news, messages, documents'
    assert_equal %w[document issue journal message news wiki], ids.map { |i| i.split(':').first }.uniq.sort
    assert_equal [ids.size, ids.size, 0, {}], [summary.sent, summary.indexed, summary.unchanged, summary.failed]
    assert_equal ids, ragd_ids
    assert_match(%r{indexing +\[#+\] #{ids.size}/#{ids.size} 100%}, progress.string)

    again = reindex!
    assert_equal [0, 0, ids.size], [again.sent, again.indexed, again.unchanged]
    assert RedmineRag::Inventory.new.load.in_sync?
  end

  def test_status_names_what_is_missing_stale_or_extra_and_reindex_repairs_it
    reindex!
    rag_client.delete(['issue:3'])                      # ragd lost a document
    RedmineRag::DocVersion.bump('wiki:2')               # a change whose job never ran
    rag_client.upsert([{ id: 'issue:424242', text: 'gone from Redmine', type: 'issue', project_id: 1, version: 1 }])
    inv = RedmineRag::Inventory.new.load
    assert_equal [['issue:3'], ['wiki:2'], ['issue:424242']], [inv.missing.map(&:id), inv.stale.map(&:id), inv.extra.map(&:id)]

    text = run_task('redmine_rag:status')
    assert_match(/missing: issue:3$/, text)
    assert_match(/stale: wiki:2$/, text)
    assert_match(/extra .*: issue:424242$/, text)
    assert_match(/NOT in sync/, text)
    assert_match(/^ecookbook \(1\) +issue +\d+ +\d+ +1 +0 +1$/, text)

    text = run_task('redmine_rag:reindex', 'PRUNE' => '1')
    assert_match(/2 sent, 2 indexed, \d+ unchanged, 1 pruned, 0 failed/, text)
    assert_equal expected_ids, ragd_ids
    assert_match(/^in sync$/, run_task('redmine_rag:status'))
  end

  def test_versions_ahead_of_redmine_are_replaced
    issue = Issue.find(1)
    5.times { RedmineRag::DocVersion.bump("issue_access:#{issue.id}") }
    reindex!
    RedmineRag::DocVersion.delete_all # the plugin's tables were recreated: counters restart
    inv = RedmineRag::Inventory.new.load
    assert_equal %w[journal:1 journal:2], inv.ahead.map(&:id).sort
    reindex!
    assert RedmineRag::Inventory.new.load.in_sync?
  end

  def test_a_refused_document_does_not_stop_the_stream
    Issue.find(2).update_columns(description: too_large_text) # no callbacks: found by the reindex
    summary = reindex!
    assert_equal ['issue:2'], summary.failed.keys
    assert_match(/text: .*larger than the limit/, summary.failed['issue:2'])
    assert_equal expected_ids - ['issue:2'], ragd_ids
    assert_equal 'refused', RedmineRag::Failure.find_by(doc_id: 'issue:2').state
    text = run_task('redmine_rag:status')
    assert_match(/refused by ragd: 1,/, text)
    assert_match(/issue:2 refused \(1x\): documents\[\d+\]\.text/, text)
  end

  def test_project_and_types_narrow_the_work
    text = run_task('redmine_rag:reindex', 'PROJECT' => 'onlinestore', 'TYPES' => 'issue,wiki')
    held = stored
    assert_equal [2], held.values.map(&:project_id).uniq
    assert_equal %w[issue wiki], held.values.map(&:type).uniq.sort
    assert_match(/#{held.size} indexed/, text)
  end

  def test_bad_arguments_are_named
    err = StringIO.new
    $stderr = err
    assert_raises(SystemExit) { run_task('redmine_rag:reindex', 'TYPES' => 'issue,bogus') }
    assert_raises(SystemExit) { run_task('redmine_rag:status', 'PROJECT' => 'no-such-project') }
    assert_match(/TYPES: unknown bogus/, err.string)
    assert_match(/PROJECT: no project "no-such-project"/, err.string)
  ensure
    $stderr = STDERR
  end

  def test_prune_task_deletes_what_redmine_no_longer_has
    reindex!
    Issue.where(id: 5).delete_all # gone without callbacks
    assert_match(/^1 pruned$/, run_task('redmine_rag:prune'))
    refute stored.key?('issue:5')
  end
end
