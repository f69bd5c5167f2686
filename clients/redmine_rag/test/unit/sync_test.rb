# frozen_string_literal: true

require File.expand_path('../test_helper', __dir__)

# Changes reach ragd through the model callbacks and the jobs (Redmine's test
# environment runs jobs inline), against the real daemon.
class RedmineRag::SyncTest < ActiveSupport::TestCase
  include RedmineRag::TestHelper
  fixtures(*RedmineRag::TestHelper::FIXTURES)

  def setup
    rag_settings
    User.current = nil
  end

  def new_issue(**attrs)
    Issue.create!({ project_id: 1, tracker_id: 1, author_id: 2, status_id: 1, priority: IssuePriority.first,
                    subject: 'Printer on floor three', description: 'The printer jams on every second page.' }.merge(attrs))
  end

  def add_note(issue, text, user: User.find(2), private_notes: false)
    issue = Issue.find(issue.id)
    issue.init_journal(user, text)
    issue.private_notes = private_notes
    issue.save!
    issue.journals.order(:id).last
  end

  def test_an_issue_and_its_notes_stay_in_sync
    issue = new_issue
    assert_equal issue.reload.lock_version + 1, stored["issue:#{issue.id}"].version
    assert_includes matching('paper stuck in the printer'), "issue:#{issue.id}"

    issue.reload.update!(description: 'The scanner refuses USB sticks.')
    assert_equal issue.reload.lock_version + 1, stored["issue:#{issue.id}"].version
    assert_equal "issue:#{issue.id}", matching('scanner does not read a USB stick', top_k: 1).first

    note = add_note(issue, 'Replaced the fuser unit; the toner cartridge was empty too.')
    assert stored.key?("journal:#{note.id}")
    assert_equal "journal:#{note.id}", matching('fuser unit and toner replaced', top_k: 1).first

    before = stored["journal:#{note.id}"].version
    note.update!(notes: 'Replaced the drum instead.')
    assert_operator stored["journal:#{note.id}"].version, :>, before
    note.update!(notes: '')
    refute stored.key?("journal:#{note.id}"), 'an emptied note is no document'

    other = add_note(issue, 'Works again.')
    issue.reload.destroy
    held = stored
    refute held.key?("issue:#{issue.id}")
    refute held.key?("journal:#{other.id}")
  end

  def test_notes_follow_their_issue_when_it_moves_or_becomes_private
    issue = new_issue
    note = add_note(issue, 'A note that must move with its issue.')
    v = stored["journal:#{note.id}"].version
    issue.reload.update!(project_id: 2)
    held = stored
    assert_equal [2, 2], [held["issue:#{issue.id}"].project_id, held["journal:#{note.id}"].project_id]
    assert_operator held["journal:#{note.id}"].version, :>, v
    v = held["journal:#{note.id}"].version
    issue.reload.update!(is_private: true)
    assert_operator stored["journal:#{note.id}"].version, :>, v
  end

  def test_wiki_pages_news_messages_documents
    page = WikiPage.new(wiki: Wiki.find(1), title: 'Backup_policy')
    page.content = WikiContent.new(text: 'Nightly backups go to the tape library at two in the morning.', author: User.find(2))
    page.save!
    id = "wiki:#{page.id}"
    assert_equal id, matching('when are the backups taken', top_k: 1).first
    v = stored[id].version
    page.content.reload.update!(text: 'Backups now go to object storage every hour.')
    assert_operator stored[id].version, :>, v
    v = stored[id].version
    page.reload.update!(title: 'Backup_rules')
    assert_operator stored[id].version, :>, v
    page.reload.destroy
    refute stored.key?(id)

    news = News.create!(project_id: 1, author_id: 2, title: 'Office move', description: 'We move to the new building in May.')
    message = Message.create!(board_id: 1, author_id: 2, subject: 'Parking', content: 'Where do visitors park?')
    doc = Document.create!(project_id: 1, category_id: 1, title: 'Floor plan', description: 'Plan of the third floor.')
    held = stored
    ids = ["news:#{news.id}", "message:#{message.id}", "document:#{doc.id}"]
    assert_equal([1, 1, 1], ids.map { |i| held[i].version })
    news.update!(description: 'The move is postponed to June.')
    message.update!(content: 'Visitors park in the basement.')
    doc.update!(description: 'Plan of the fourth floor.')
    held = stored
    assert_equal([2, 2, 2], ids.map { |i| held[i].version })
    [news, message, doc].each(&:destroy)
    held = stored
    assert_empty(ids.select { |i| held.key?(i) })
  end

  def test_a_deleted_project_leaves_nothing_behind
    reindex!
    assert_operator stored(project_ids: [5]).size, :>, 0
    Project.find(5).destroy
    assert_empty stored(project_ids: [5])
  end

  def test_late_and_reordered_writes_cannot_bring_back_the_past
    issue = new_issue
    old = RedmineRag::Documents.kind('issue').document(Issue.find(issue.id), {})
    issue.reload.update!(description: 'The new text.')
    acks = RedmineRag::Indexer.new.upsert([old]).acks
    assert_equal [:stale], acks.map(&:status), 'an older version is ignored'
    issue.reload.destroy
    assert_equal [:stale], RedmineRag::Indexer.new.upsert([old]).acks.map(&:status), 'a tombstone stays deleted'
    refute stored.key?("issue:#{issue.id}")
  end

  def test_excluded_projects_and_types_are_left_out_and_purged
    reindex!
    assert_operator stored(project_ids: [2]).size, :>, 0
    rag_settings('excluded_projects' => ['2'], 'index_types' => %w[issue journal wiki])
    # The settings change reconciles in a job (inline here).
    assert_empty stored(project_ids: [2])
    assert_empty stored(types: %w[news message document])
    issue = new_issue(project_id: 2)
    refute stored.key?("issue:#{issue.id}")
    News.create!(project_id: 1, author_id: 2, title: 'Not indexed', description: 'News are switched off.')
    assert_empty stored(types: %w[news])
    moved = Issue.find(1)
    assert stored.key?('issue:1')
    moved.update!(project_id: 2) # into the excluded project: out of ragd with its notes
    held = stored
    refute held.key?('issue:1')
    assert_empty moved.journals.map { |j| "journal:#{j.id}" } & held.keys
  end

  def test_a_refused_document_is_logged_counted_and_blocks_nothing
    issue = new_issue(description: too_large_text) # above ragd's limits.max_document_bytes; the save succeeds
    failure = RedmineRag::Failure.find_by(doc_id: "issue:#{issue.id}")
    assert_equal 'refused', failure.state
    assert_match(/documents\[0\]\.text: .*larger than the limit/, failure.reason)
    refute stored.key?("issue:#{issue.id}")
    fine = new_issue(subject: 'A normal issue')
    assert stored.key?("issue:#{fine.id}")
    issue.reload.update!(description: 'Short again.')
    assert stored.key?("issue:#{issue.id}")
    assert_nil RedmineRag::Failure.find_by(doc_id: "issue:#{issue.id}"), 'written now: no longer a failure'
  end
end

# ragd down while Redmine saves: with a real queue (ActiveJob's test adapter).
class RedmineRag::SyncRetryTest < ActiveSupport::TestCase
  include RedmineRag::TestHelper
  include ActiveJob::TestHelper
  fixtures(*RedmineRag::TestHelper::FIXTURES)

  def setup
    rag_settings
  end

  def test_ragd_down_the_save_succeeds_and_the_job_retries_until_it_is_back
    rag_settings('address' => dead_address, 'index_timeout' => '5')
    issue = Issue.create!(project_id: 1, tracker_id: 1, author_id: 2, status_id: 1, priority: IssuePriority.first,
                          subject: 'Saved while ragd is down')
    assert issue.persisted?
    assert_enqueued_jobs 1, only: RedmineRag::IndexJob
    perform_enqueued_jobs(only: RedmineRag::IndexJob) # fails: ragd unreachable, so it is queued again
    assert_enqueued_jobs 1, only: RedmineRag::IndexJob
    job = enqueued_jobs.last
    assert_equal 'rag', job[:queue]
    assert job[:at], 'retried later, with backoff'
    failure = RedmineRag::Failure.find_by(doc_id: "issue:#{issue.id}")
    assert_equal 'retrying', failure.state
    assert_match(/\ARagd::Unavailable: /, failure.reason)
    assert_equal 1, RedmineRag::StatusReport.new.failures['retrying']

    rag_settings # ragd is back
    perform_enqueued_jobs(only: RedmineRag::IndexJob)
    assert_no_enqueued_jobs only: RedmineRag::IndexJob
    assert stored.key?("issue:#{issue.id}")
    assert_nil RedmineRag::Failure.find_by(doc_id: "issue:#{issue.id}")
  end

  def test_retries_run_out_and_say_so
    rag_settings('address' => dead_address, 'index_timeout' => '2')
    issue = Issue.create!(project_id: 1, tracker_id: 1, author_id: 2, status_id: 1, priority: IssuePriority.first,
                          subject: 'Never indexed')
    runs = 0
    while enqueued_jobs.any? { |j| j[:job] == RedmineRag::IndexJob }
      perform_enqueued_jobs(only: RedmineRag::IndexJob)
      runs += 1
      flunk 'retried without end' if runs > 20
    end
    assert_equal 12, runs
    assert_equal 'gave_up', RedmineRag::Failure.find_by(doc_id: "issue:#{issue.id}").state
  end
end
