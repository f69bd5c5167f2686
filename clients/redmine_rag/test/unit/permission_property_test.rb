# frozen_string_literal: true

require File.expand_path('../test_helper', __dir__)
require File.expand_path('../support/permission_world', __dir__)

# The test that counts: Redmine is the oracle of who may see what.
#
# A random Redmine world (RedmineRag::PermissionWorld) is built in the test
# database, indexed through the plugin (reindex), then changed through Redmine
# (issues moved, made private, reassigned, retracked, re-authored, notes made
# private, pages renamed, records deleted: the plugin's callbacks and jobs carry
# the changes). Then, for every user (admin and anonymous included) and many
# queries, the ragd search the plugin makes (its filter from
# Ragd::Redmine.filter_for, every search mode, a random project scope and
# random ticked types, and Similar) is checked against Redmine's own `visible`
# scopes:
#
#   leaks          hits Redmine would not show this user: must be 0;
#   over-filtered  pages shorter than top_k while Redmine shows the user at
#                  least top_k documents of those types in that scope (or
#                  shorter than all of them when fewer): must be 0 (vector and
#                  hybrid modes, where every permitted document is a candidate:
#                  min_score -1, since cosine similarities can be negative).
#
# REDMINE_RAG_PROPERTY_SEED and REDMINE_RAG_PROPERTY_SCALE (1 = the CI size)
# vary the world; REDMINE_RAG_PROPERTY_REPORT names a file for the counts.
class RedmineRag::PermissionPropertyTest < ActiveSupport::TestCase
  include RedmineRag::TestHelper
  fixtures(*RedmineRag::TestHelper::FIXTURES)

  SEED = Integer(ENV.fetch('REDMINE_RAG_PROPERTY_SEED', '2026'))
  SCALE = Float(ENV.fetch('REDMINE_RAG_PROPERTY_SCALE', '1'))
  SEARCH_TYPES = RedmineRag::Settings::SEARCH_TYPES

  def setup
    rag_settings
    Setting.notified_events = [] # no notification mails: not what is tested, and slow
    @stats = Hash.new(0)
  end

  # The CISI collection committed in the ragd repository (the test script passes its path).
  def cisi(name)
    dir = ENV.fetch('REDMINE_RAG_CISI_DIR') { raise 'REDMINE_RAG_CISI_DIR is not set: run scripts/redmine/test.sh' }
    File.read(File.join(dir, name), encoding: 'ISO-8859-1').encode('UTF-8')
  end

  def cisi_texts
    cisi('CISI.ALL').split(/^\.I /).drop(1).map do |rec|
      title = rec[/^\.T\s*\n(.*?)^\.[AWBX]/m, 1].to_s.gsub(/\s+/, ' ').strip
      body = rec[/^\.W\s*\n(.*?)(^\.[ABX]|\z)/m, 1].to_s.gsub(/\s+/, ' ').strip
      # Short texts: permissions, not text length, are under test (and embedding is the slow part).
      [title.presence || 'Untitled', (body.presence || title)[0, 240]]
    end
  end

  def cisi_queries
    cisi('CISI.QRY').split(/^\.I /).drop(1).map { |q| q.sub(/\A\d+\s*\n\.W\s*\n/, '').gsub(/\s+/, ' ').strip }
  end

  # { type => Set of ids } this user may see, by Redmine's own scopes.
  def visible_for(user)
    {
      'issue' => Issue.visible(user).pluck(:id),
      'journal' => Journal.visible(user).where(journalized_type: 'Issue').where.not(notes: [nil, '']).pluck(:id),
      'wiki' => WikiPage.joins(wiki: :project).where(Project.allowed_to_condition(user, :view_wiki_pages)).pluck(:id),
      'news' => News.visible(user).pluck(:id),
      'message' => Message.visible(user).pluck(:id),
      'document' => Document.visible(user).pluck(:id)
    }.transform_values(&:to_set)
  end

  def test_no_leak_and_no_over_filtering_in_a_random_redmine
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    @world = RedmineRag::PermissionWorld.new(seed: SEED, scale: SCALE, texts: cisi_texts)
    RedmineRag::Sync.suspended { @world.build }
    assert_empty reindex!.failed
    @world.mutate # through the callbacks and jobs
    assert_in_sync

    @docs = rag_client.list_documents.map { |d| [d.id, d.type, d.project_id] }
    queries = cisi_queries
    users = User.where(id: @world.users.map(&:id)).to_a + [User.anonymous]
    users.each do |user|
      visible = visible_for(user)
      @world.n(10).times { check_search(user, visible, @world.pick(queries)) }
      check_similar(user, visible)
    end
    report = format('permission property (seed %<seed>d): %<users>d users, %<docs>d documents, %<searches>d searches ' \
                    '(%<similar>d similar), %<hits>d hits checked, %<leaks>d leaks, %<checked>d pages checked for ' \
                    'fullness, %<short>d over-filtered; %<s>.0f s',
                    seed: SEED, users: users.size, docs: @docs.size, searches: @stats[:searches] + @stats[:similar],
                    similar: @stats[:similar], hits: @stats[:hits], leaks: @stats[:leaks], checked: @stats[:full_checked],
                    short: @stats[:over_filtered], s: Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0)
    puts "\n#{report}"
    File.write(ENV['REDMINE_RAG_PROPERTY_REPORT'], report) if ENV['REDMINE_RAG_PROPERTY_REPORT']
    assert_equal 0, @stats[:leaks], report
    assert_equal 0, @stats[:over_filtered], report
    assert_operator @stats[:full_checked], :>, 0
  end

  private

  def assert_in_sync
    inv = RedmineRag::Inventory.new.load
    assert inv.in_sync?, "ragd must follow Redmine: missing #{inv.missing.map(&:id).first(5)}, stale " \
                         "#{(inv.stale + inv.ahead).map(&:id).first(5)}, extra #{inv.extra.map(&:id).first(5)}"
  end

  # One search as the search page makes it: the user's filter for the ticked
  # types in a project scope, then every hit against Redmine's scopes.
  def check_search(user, visible, query)
    @stats[:searches] += 1
    types = ticked_types
    projects = @world.chance(0.3) ? [@world.pick(@world.projects)] : nil
    top_k = @world.pick([5, 10, 20])
    mode = @world.pick(%i[vector hybrid keyword auto])
    allowed = allowed_count(visible, types, projects&.first&.id)
    filter = RedmineRag::Permissions.filter(user, projects, types)
    unless filter # no call: right only if Redmine shows nothing either
      @stats[:over_filtered] += 1 if allowed.positive?
      return
    end
    hits = rag_client.search(query, top_k: top_k, filter: filter, mode: mode, group_by_document: true, min_score: -1.0)
    judge(hits.map(&:document_id), visible, allowed, top_k, %i[vector hybrid].include?(mode),
          "#{user.login.presence || 'anonymous'} #{mode} #{types.join(',')} #{projects&.map(&:id)}")
  end

  # Search types ticked at random, as ragd document types.
  def ticked_types
    scopes = SEARCH_TYPES.keys.select { @world.chance(0.6) }.presence || [@world.pick(SEARCH_TYPES.keys)]
    scopes.flat_map { |scope| SEARCH_TYPES[scope] }
  end

  # Documents of these types (in this project) Redmine shows the user.
  def allowed_count(visible, types, project_id)
    @docs.count do |id, type, project|
      types.include?(type) && (project_id.nil? || project_id == project) && visible_doc?(visible, id)
    end
  end

  def check_similar(user, visible)
    doc_id = "issue:#{@world.pick(visible['issue'].to_a)}" if visible['issue'].any?
    return unless doc_id && @docs.any? { |id, _, _| id == doc_id }

    filter = RedmineRag::Permissions.filter(user, nil, %w[issue])
    return unless filter

    @stats[:similar] += 1
    allowed = @docs.count { |id, type, _| type == 'issue' && id != doc_id && visible_doc?(visible, id) }
    hits = rag_client.similar(doc_id, top_k: 10, filter: filter, min_score: -1.0)
    judge(hits.map(&:document_id), visible, allowed, 10, true, "#{user.login} similar #{doc_id}")
  end

  def judge(ids, visible, allowed, top_k, full_expected, what)
    @stats[:hits] += ids.size
    leaked = ids.reject { |id| visible_doc?(visible, id) }
    @stats[:leaks] += leaked.size
    puts "LEAK #{what}: #{leaked.inspect}" if leaked.any?
    return unless full_expected

    @stats[:full_checked] += 1
    return if ids.size >= [allowed, top_k].min

    @stats[:over_filtered] += 1
    puts "SHORT #{what}: #{ids.size} hits, Redmine shows #{allowed}"
  end

  def visible_doc?(visible, doc_id)
    type, id = RedmineRag::Documents.parse_id(doc_id)
    visible.fetch(type, Set.new).include?(id)
  end
end
