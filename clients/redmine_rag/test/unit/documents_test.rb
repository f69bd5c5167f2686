# frozen_string_literal: true

require File.expand_path('../test_helper', __dir__)

# How records become ragd documents, and that every change of what a document
# carries raises its version (what makes retried and reordered writes safe).
class RedmineRag::DocumentsTest < ActiveSupport::TestCase
  include RedmineRag::TestHelper
  fixtures(*RedmineRag::TestHelper::FIXTURES)

  def setup
    rag_settings('index_types' => []) # no jobs: these tests look at documents only
  end

  def doc(type, id)
    kind = RedmineRag::Documents.kind(type)
    records, counters = kind.find_batch([id])
    kind.document(records.first, counters)
  end

  def test_issue_document_carries_the_grants_fields
    issue = Issue.find(14) # private, project 3
    issue.update_columns(assigned_to_id: 10) # a group
    d = doc('issue', 14)
    assert_equal ['issue:14', 'issue', 3, issue.tracker_id, true, 2],
                 d.values_at(:id, :type, :project_id, :tracker_id, :is_private, :author_id)
    assert_equal [2, 10], d[:owner_ids]
    assert_equal issue.subject, d[:title]
    assert_equal issue.lock_version + 1, d[:version]
    assert_equal({ 'issue_id' => '14', 'open' => '1' }, d[:metadata])
  end

  def test_issue_without_description_is_found_by_its_subject
    Issue.find(1).update_columns(description: '  ')
    assert_equal Issue.find(1).subject, doc('issue', 1)[:text]
  end

  def test_journal_document_follows_its_issue_and_names_its_writer
    j = Journal.find(5) # on private issue 14, written by user 2
    j.update_columns(private_notes: true)
    d = doc('journal', 5)
    issue = Issue.find(14)
    assert_equal ['journal:5', 'journal', issue.project_id, issue.tracker_id, true, true, 2],
                 d.values_at(:id, :type, :project_id, :tracker_id, :is_private, :private_note, :author_id)
    assert_equal RedmineRag::Documents.owner_ids(issue), d[:owner_ids]
    assert_equal 'A comment on a private issue.', d[:text]
  end

  def test_a_journal_without_notes_is_no_document
    Journal.find(1).update_columns(notes: '')
    assert_nil doc('journal', 1)
  end

  def test_wiki_news_message_document
    page = WikiPage.find(1)
    d = doc('wiki', 1)
    assert_equal ['wiki:1', 'wiki', page.wiki.project_id, page.pretty_title, page.content.text],
                 d.values_at(:id, :type, :project_id, :title, :text)
    assert_equal 'news', doc('news', 1)[:type]
    assert_equal News.find(1).project_id, doc('news', 1)[:project_id]
    m = Message.find(2) # a reply
    assert_equal [m.board.project_id, m.subject, '1'],
                 doc('message', 2).values_at(:project_id, :title).push(doc('message', 2)[:metadata]['topic_id'])
    assert_equal ['document:1', Document.find(1).project_id], doc('document', 1).values_at(:id, :project_id)
  end

  def test_every_change_raises_the_version
    versions = -> { [doc('issue', 1)[:version], doc('journal', 1)[:version], doc('wiki', 1)[:version], doc('news', 1)[:version]] }
    v0 = versions.call
    issue = Issue.find(1)
    issue.init_journal(User.find(1))
    issue.update!(subject: 'Changed subject')
    v1 = versions.call
    assert_operator v1[0], :>, v0[0], 'issue saved'
    assert_equal v0[1], v1[1], 'a subject change leaves the notes alone'

    issue.reload.update!(project_id: 2, tracker_id: 1)
    v2 = versions.call
    assert_operator v2[1], :>, v1[1], 'issue moved: its notes carry the new project'
    issue.reload.update!(is_private: true)
    v3 = versions.call
    assert_operator v3[1], :>, v2[1], 'issue made private'

    Journal.find(1).update!(notes: 'Edited note')
    v4 = versions.call
    assert_operator v4[1], :>, v3[1], 'note edited'
    Journal.find(1).update!(private_notes: true)
    assert_operator versions.call[1], :>, v4[1], 'note made private'

    page = WikiPage.find(1)
    page.content.update!(text: 'New text', author: User.find(1))
    v5 = versions.call
    assert_operator v5[2], :>, v4[2], 'wiki text edited'
    page.reload.update!(title: 'Renamed_page')
    v6 = versions.call
    assert_operator v6[2], :>, v5[2], 'wiki page renamed'
    News.find(1).update!(title: 'News again')
    assert_operator versions.call[3], :>, v6[3], 'news edited'
  end

  def test_closing_an_issue_is_an_access_change
    issue = Issue.find(1)
    before = doc('journal', 1)[:version]
    issue.update!(status: IssueStatus.where(is_closed: true).first)
    after = doc('journal', 1)
    assert_operator after[:version], :>, before
    assert_equal '0', after[:metadata]['open']
  end

  def test_inventory_matches_the_documents
    RedmineRag::Documents::TYPES.each do |type|
      kind = RedmineRag::Documents.kind(type)
      inventory = kind.inventory.to_h { |id, version, project| [id, [version, project]] }
      built = kind.scope.to_a.filter_map { |r| (_, c = kind.find_batch([r.id])) && kind.document(r, c) }
      assert_equal built.to_h { |d| [d[:id], [d[:version], d[:project_id]]] }, inventory, type
      assert_operator inventory.size, :>, 0, type
    end
  end
end
