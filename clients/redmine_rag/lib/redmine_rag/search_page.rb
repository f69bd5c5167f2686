# frozen_string_literal: true

module RedmineRag
  # Redmine's search page (and /search.json) answered by ragd: one ragd call for
  # every ticked type ragd indexes (issues with their notes, wiki pages, news,
  # forum messages, documents), in AUTO mode (identifiers go keyword, questions
  # hybrid), within the user's permissions. Types ragd does not index
  # (changesets, projects, other plugins') and excluded projects are answered by
  # Redmine's own search beside it; ragd's hits come first, in ragd's order.
  #
  # #call returns nil when Redmine's own search should answer everything: the
  # plugin is off, the options ask for what semantic search cannot do (titles
  # only, attachments only), or ragd is unavailable or slower than the search
  # timeout (then the page says so).
  class SearchPage
    # Redmine ranks its own results by timestamp: ragd's go above any timestamp.
    RANK_BASE = 10_000_000_000
    # Redmine search scope -> the model its ids belong to.
    RESULT_TYPES = { 'issue' => 'issues', 'journal' => 'issues', 'wiki' => 'wiki_pages', 'news' => 'news',
                     'message' => 'messages', 'document' => 'documents' }.freeze
    Snippet = Struct.new(:text, :score, :document_id, keyword_init: true)

    attr_reader :snippets

    def initialize(question:, user:, scope:, projects:, tokens:, options:, settings: RedmineRag.settings)
      @question = question
      @user = user
      @scope = scope
      @projects = projects.is_a?(Project) ? [projects] : projects&.to_a
      @tokens = tokens
      @options = options
      @settings = settings
      @snippets = {}
    end

    # [[scope, id], ...] best first, or nil (Redmine's own search answers).
    def call
      return nil unless @settings.search_enabled?
      return nil if @options[:titles_only] || @options[:attachments] == 'only'

      types = ragd_types
      return nil if types.empty?

      search = start_search(types) # ragd answers while Redmine does its part:
      others = redmine_results(types) # its own search of the types ragd does not index,
      scopes = search && visible_scopes(types) # and the permission checks of ragd's hits
      hits = ragd_hits(search)
      return nil if hits.nil?

      Current.search_outcome = :ragd
      ranked = rank(hits, scopes)
      ranked.concat(others)
      ranked.sort_by! { |(_, (rank, id))| [-rank, -id] }
      ranked.map { |scope, (_, id)| [scope, id] }
    end

    # The ticked Redmine scopes' document types that ragd indexes and can filter.
    def ragd_types
      wanted = @scope.flat_map { |s| Settings::SEARCH_TYPES.fetch(s, []) }
      Permissions.searchable(wanted & @settings.index_types)
    end

    # What Redmine itself considers visible, per result model.
    def self.visible_scope(scope, user)
      type = RESULT_TYPES.except('journal').key(scope)
      type && Permissions.visible_records(type, user)
    end

    private

    def ragd_projects
      excluded = @settings.excluded_project_ids
      return @projects.reject { |p| excluded.include?(p.id) } if @projects
      return nil if excluded.empty?

      Project.where.not(id: excluded).to_a
    end

    # The ragd search, running on a thread of concurrent-ruby's :io pool (a gRPC
    # call, no database; pooled threads rather than one new thread per page), or
    # nil when the user may see none of these types there: no call at all.
    def start_search(types)
      filter = Permissions.filter(@user, ragd_projects, types)
      return nil unless filter

      @search_types = types
      filter.metadata_equals = { 'open' => '1' } if @options[:open_issues] # other types carry open=1 too
      client = RedmineRag.client
      question = @question
      s = @settings
      Concurrent::Promises.future_on(:io) do # its error is raised by value! where it is awaited
        client.search(question, top_k: s.search_max_results, filter: filter, mode: :auto, group_by_document: true,
                                min_score: s.search_min_score, timeout: s.search_timeout)
      end
    end

    # ragd's hits, [] when nothing was asked, nil when ragd failed (the page says so).
    def ragd_hits(search)
      return [] unless search

      result = Runtime.measure(:ragd) { search.value! } # the wait left after Redmine's own part
      # A question: the page may offer ragd's answer over the same scope (Answering).
      Current.answer_scope = { project_ids: ragd_projects&.map(&:id), types: @search_types } if result.complex
      result.hits
    rescue Ragd::Error => e
      Current.search_outcome = :fallback
      Current.search_detail = e.is_a?(Ragd::Unavailable) ? e.message : "#{e.class.name}: #{e.message}"
      RedmineRag.log(:warn, "search fell back to Redmine's own: #{Current.search_detail}")
      nil
    end

    # [[scope, [rank, id]], ...] in ragd's order, one per result (a note's hit
    # is its issue's), keeping only what Redmine shows the user now: the index
    # follows the job queue, so a record changed a moment ago may still carry
    # its old permissions there.
    def rank(hits, scopes)
      seen = {}
      hits.each do |hit|
        type, id = Documents.parse_id(hit.document_id)
        scope = RESULT_TYPES[type]
        next unless scope

        id = (hit.document&.metadata || {})['issue_id'].to_i if type == 'journal'
        next if id.zero? || seen.key?([scope, id])

        seen[[scope, id]] = hit
      end
      visible = visible_ids(seen.keys, scopes)
      n = seen.size
      seen.each_with_index.filter_map do |((scope, id), hit), i|
        next unless visible[scope]&.include?(id)

        @snippets[[scope, id]] = Snippet.new(text: hit.text, score: hit.score, document_id: hit.document_id)
        [scope, [RANK_BASE + n - i, id]]
      end
    end

    # Redmine's `visible` scope of every result model ragd may answer, built while ragd
    # works: building one is most of a check's cost (Project.allowed_to_condition walks
    # the user's roles and projects in Ruby; the query itself takes well under a
    # millisecond), and it does not depend on the hits. Built per request, never cached:
    # the checks always apply Redmine's permissions of this moment.
    def visible_scopes(types)
      types.filter_map { |t| RESULT_TYPES[t] }.uniq.to_h { |scope| [scope, self.class.visible_scope(scope, @user)] }
    end

    # {scope => Set of the ids the user may see now}, one query per scope with hits.
    def visible_ids(keys, scopes)
      keys.group_by(&:first).to_h do |scope, list|
        ids = list.map(&:last)
        visible = scopes[scope] || self.class.visible_scope(scope, @user)
        [scope, visible.where(id: ids).pluck(:id).to_set]
      end
    end

    # Redmine's own search for what ragd does not answer: the ticked types it
    # does not index, and excluded projects for the types it does.
    def redmine_results(ragd_types)
      covered = ragd_types.map { |t| RESULT_TYPES[t] }.uniq
      out = []
      @scope.each do |scope|
        projects = covered.include?(scope) ? excluded_in_scope : @projects
        next if projects == []

        klass = scope.singularize.camelcase.constantize
        klass.search_result_ranks_and_ids(@tokens, @user, projects, @options).each { |r| out << [scope, r] }
      end
      out
    end

    def excluded_in_scope
      excluded = @settings.excluded_project_ids
      return [] if excluded.empty?
      return @projects.select { |p| excluded.include?(p.id) } if @projects

      Project.where(id: excluded).to_a
    end
  end
end
