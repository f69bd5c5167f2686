# frozen_string_literal: true

module RedmineRag
  # Redmine records as ragd documents: one Kind per document type, each knowing
  # how to enumerate its records, build a document (a Hash with the fields of
  # ragd.v1.Document, the permission grants' fields included) and version it.
  #
  # Permission fields (the grants contract, see the README): project_id, type,
  # tracker_id, owner_ids (the issue's author and assignee, user or group),
  # is_private and, for a note, private_note with the note's writer as
  # author_id. A journal carries its issue's project, tracker, owners and
  # privacy, since Redmine shows a note only to who may see its issue.
  #
  # Versions grow with every change a document carries (see DocVersion):
  #   issue    lock_version + 1
  #   journal  (issue_access counter << 20) + journal counter + 1
  #            (issue_access counts changes of the issue's project, tracker,
  #            privacy, author, assignee or open/closed state)
  #   wiki     (content version << 20) + page counter + 1 (renames, moves)
  #   news, message, document   counter + 1
  # A record that is no longer indexable (a note emptied, a project excluded) is
  # deleted at its current version; a destroyed one at version + 1.
  module Documents
    TYPES = %w[issue journal wiki news message document].freeze
    SHIFT = 20
    LOW = (1 << SHIFT) - 1

    def self.kind(type) = KINDS.fetch(type.to_s) { raise ArgumentError, "unknown document type #{type.inspect}" }
    def self.kinds = KINDS.values

    # "journal:12" -> ["journal", 12]
    def self.parse_id(doc_id)
      type, id = doc_id.to_s.split(':', 2)
      [type, id.to_i]
    end

    def self.composite(high, low) = (high.to_i << SHIFT) + (low.to_i & LOW) + 1

    # What every kind has in common. A subclass names its model, its key
    # columns (plucked before anything else is read) and how a record becomes a
    # document.
    class Kind
      attr_reader :type, :redmine_module

      def initialize(type, redmine_module)
        @type = type
        @redmine_module = redmine_module
      end

      def doc_id(id) = "#{type}:#{id}"

      # Every record of this kind that may be a document (those in excluded
      # projects included: callers narrow by project).
      def scope(project_ids = nil)
        rel = base_scope
        project_ids ? rel.where(project_column => project_ids) : rel
      end

      # Yields [records, counters] a batch at a time, reading the counters of a
      # batch before its records (see DocVersion for why the order matters).
      def each_batch(relation, batch_size: 200)
        relation.in_batches(of: batch_size) do |batch|
          rows = batch.pluck(*key_columns)
          counters = DocVersion.values(rows.flat_map { |row| keys(*Array(row)) })
          yield load(rows.map { |row| Array(row).first }), counters
        end
      end

      # The records of these ids, current, with what their documents need.
      def find_batch(ids)
        out = nil
        each_batch(base_scope.where(id: ids), batch_size: [ids.size, 1].max) { |records, counters| out = [records, counters] }
        out || [[], {}]
      end

      def key_columns = [:id]
      def keys(id) = ["#{type}:#{id}"]

      # The document of a record, or nil when it is not one now (no text).
      def document(record, counters)
        return nil unless indexable?(record)

        fields(record).merge(id: doc_id(record.id), type: type, version: version(record, counters))
      end

      def indexable?(_record) = true

      def version(record, counters) = counters.fetch(keys(record.id).first, 0) + 1

      # Version of a tombstone for a record being destroyed: above any it had.
      def tombstone_version(record, counters) = version(record, counters) + 1

      # [[doc_id, version, project_id], ...] of every document Redmine has now,
      # without loading texts (for status and prune).
      def inventory(project_ids = nil)
        counters = DocVersion.with_prefix("#{type}:")
        scope(project_ids).where(indexable_condition).pluck(:id, project_column)
                          .map { |id, project_id| [doc_id(id), counters.fetch(id, 0) + 1, project_id] }
      end

      def indexable_condition = nil

      private

      def load(ids) = base_scope.where(id: ids).to_a
    end

    class IssueKind < Kind
      def base_scope = ::Issue.all
      def project_column = :project_id
      def keys(_id) = []
      def version(issue, _counters) = issue.lock_version.to_i + 1

      def inventory(project_ids = nil)
        scope(project_ids).pluck(:id, :lock_version, :project_id).map { |id, lv, p| [doc_id(id), lv.to_i + 1, p] }
      end

      def fields(issue)
        {
          title: issue.subject.to_s,
          # an issue without a description is still found by its subject
          text: issue.description.to_s.strip.empty? ? issue.subject.to_s : issue.description.to_s,
          project_id: issue.project_id, tracker_id: issue.tracker_id, is_private: issue.is_private ? true : false,
          author_id: issue.author_id, owner_ids: Documents.owner_ids(issue), updated_at: issue.updated_on,
          metadata: { 'issue_id' => issue.id.to_s, 'open' => Documents.open_flag(issue) }
        }
      end

      private

      def load(ids) = base_scope.where(id: ids).preload(:status).to_a
    end

    class JournalKind < Kind
      def base_scope = ::Journal.where(journalized_type: 'Issue').joins(:issue)
      def project_column = 'issues.project_id'
      def key_columns = %i[id journalized_id]
      def keys(id, issue_id = nil) = ["issue_access:#{issue_id}", "journal:#{id}"]
      def indexable_condition = ["#{::Journal.table_name}.notes IS NOT NULL AND #{::Journal.table_name}.notes <> ''"]
      def indexable?(journal) = journal.notes.to_s.strip.present? && journal.issue.present?

      def version(journal, counters)
        access, own = keys(journal.id, journal.journalized_id)
        Documents.composite(counters.fetch(access, 0), counters.fetch(own, 0))
      end

      def inventory(project_ids = nil)
        access = DocVersion.with_prefix('issue_access:')
        own = DocVersion.with_prefix('journal:')
        scope(project_ids).where(indexable_condition)
                          .pluck("#{::Journal.table_name}.id", :journalized_id, 'issues.project_id').map do |id, issue_id, p|
          [doc_id(id), Documents.composite(access.fetch(issue_id, 0), own.fetch(id, 0)), p]
        end
      end

      def fields(journal)
        issue = journal.issue
        {
          title: issue.subject.to_s, text: journal.notes.to_s,
          project_id: issue.project_id, tracker_id: issue.tracker_id, is_private: issue.is_private ? true : false,
          owner_ids: Documents.owner_ids(issue), private_note: journal.private_notes ? true : false,
          author_id: journal.user_id, updated_at: journal.created_on,
          metadata: { 'issue_id' => issue.id.to_s, 'open' => Documents.open_flag(issue) }
        }
      end

      private

      def load(ids) = ::Journal.where(id: ids).preload(issue: :status).to_a
    end

    class WikiKind < Kind
      def base_scope = ::WikiPage.joins(:wiki)
      def project_column = 'wikis.project_id'
      def indexable?(page) = page.content.present?

      def version(page, counters)
        Documents.composite(page.content&.version.to_i, counters.fetch(keys(page.id).first, 0))
      end

      def inventory(project_ids = nil)
        counters = DocVersion.with_prefix('wiki:')
        scope(project_ids).joins(:content)
                          .pluck("#{::WikiPage.table_name}.id", "#{::WikiContent.table_name}.version", 'wikis.project_id')
                          .map { |id, v, p| [doc_id(id), Documents.composite(v, counters.fetch(id, 0)), p] }
      end

      def fields(page)
        content = page.content
        text = content.text.to_s
        {
          title: page.pretty_title, text: text.strip.empty? ? page.pretty_title : text,
          project_id: page.wiki.project_id, author_id: content.author_id.to_i, updated_at: content.updated_on,
          metadata: { 'page' => page.title, 'wiki_id' => page.wiki_id.to_s }
        }
      end

      private

      def load(ids) = ::WikiPage.where(id: ids).preload(:content, :wiki).to_a
    end

    class NewsKind < Kind
      def base_scope = ::News.all
      def project_column = :project_id

      def fields(news)
        text = [news.summary, news.description].map(&:to_s).reject { |t| t.strip.empty? }.join("\n\n")
        { title: news.title.to_s, text: text.empty? ? news.title.to_s : text, project_id: news.project_id,
          author_id: news.author_id.to_i, updated_at: news.created_on, metadata: {} }
      end
    end

    class MessageKind < Kind
      def base_scope = ::Message.joins(:board)
      def project_column = 'boards.project_id'

      def fields(message)
        text = message.content.to_s
        { title: message.subject.to_s, text: text.strip.empty? ? message.subject.to_s : text,
          project_id: message.board.project_id, author_id: message.author_id.to_i, updated_at: message.updated_on,
          metadata: { 'board_id' => message.board_id.to_s, 'topic_id' => (message.parent_id || message.id).to_s } }
      end

      private

      def load(ids) = ::Message.where(id: ids).preload(:board).to_a
    end

    class DocumentKind < Kind
      def base_scope = ::Document.all
      def project_column = :project_id

      def fields(document)
        text = document.description.to_s
        { title: document.title.to_s, text: text.strip.empty? ? document.title.to_s : text,
          project_id: document.project_id, author_id: 0, updated_at: document.created_on,
          metadata: { 'category_id' => document.category_id.to_s } }
      end
    end

    KINDS = {
      'issue' => IssueKind.new('issue', 'issue_tracking'),
      'journal' => JournalKind.new('journal', 'issue_tracking'),
      'wiki' => WikiKind.new('wiki', 'wiki'),
      'news' => NewsKind.new('news', 'news'),
      'message' => MessageKind.new('message', 'boards'),
      'document' => DocumentKind.new('document', 'documents')
    }.freeze

    # Principals for whom the issue is "their own" (Redmine's issues_visibility
    # default/own): its author and its assignee, a user or a group.
    def self.owner_ids(issue) = [issue.author_id, issue.assigned_to_id].compact.uniq

    def self.open_flag(issue) = issue.status&.is_closed? ? '0' : '1'
  end
end
