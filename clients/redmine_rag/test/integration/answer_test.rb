# frozen_string_literal: true

require File.expand_path('../test_helper', __dir__)

# The search page's "Ask" box (rack-test, real daemons): ragd's answer,
# streamed from a real model server (llama-server with SmolLM2-135M behind the
# daemon at $REDMINE_RAG_ANSWER_ADDRESS), offered for questions only, citing
# only what Redmine shows the user; hidden when the daemon has no answer model
# (the daemon at $RAGD_ADDRESS has none), when ragd is down, and when the user
# may see nothing.
class RedmineRag::AnswerIntegrationTest < Redmine::IntegrationTest
  include RedmineRag::TestHelper
  fixtures(*RedmineRag::TestHelper::FIXTURES)
  shared_collection!

  QUESTION = 'Why can I not print recipes?'

  # That daemon also asks for a token and a client certificate (mutual TLS).
  def setup
    rag_settings(RedmineRag::TestHelper.secure_settings)
    reindex!
  end

  def ask_box = css_select('#redmine-rag-answer').first

  # The answer endpoint's lines, parsed.
  def events = response.body.lines.map { |line| JSON.parse(line) }

  def test_a_question_is_answered_citing_only_what_the_user_may_see
    log_user('jsmith', 'jsmith')
    get '/search', params: { q: QUESTION, issues: 1, wiki_pages: 1 }
    assert_response :success
    assert_equal 'ragd', response.headers['X-Redmine-Rag']
    assert ask_box, 'a question offers the Ask box'
    url = ask_box['data-url']
    assert_match(/types/, url)

    get url
    assert_response :success
    assert_equal 'application/x-ndjson', response.media_type
    sources = events.first.fetch('sources')
    assert_not_empty sources
    jsmith = User.find(2)
    sources.each do |source|
      path = source['url']
      case path
      when %r{\A/issues/(\d+)} then assert Issue.visible(jsmith).exists?(Regexp.last_match(1).to_i), path
      when %r{\A/projects/([^/]+)/wiki/}
        assert jsmith.allowed_to?(:view_wiki_pages, Project.find(Regexp.last_match(1))), path
      else flunk "an issue or a wiki page: #{path}"
      end
    end
    assert_includes sources.map { |s| s['url'] }, '/issues/1', 'issue 1 "Cannot print recipes"'
    assert_operator events.count { |e| e.key?('delta') }, :>, 0, 'the text arrives in pieces'
    done = events.last.fetch('done')
    assert_includes %w[cited not_supported uncited], done['grounding']
    assert_equal events.filter_map { |e| e['delta'] }.join.strip.empty?, false
    assert_match(/\A<p>/, done['html'])
  end

  def test_identifiers_and_keywords_are_not_questions
    get '/search', params: { q: 'recipe', issues: 1 }
    assert_equal 'ragd', response.headers['X-Redmine-Rag']
    assert_nil ask_box
  end

  def test_a_daemon_without_an_answer_model_hides_the_box
    rag_settings # the daemon at $RAGD_ADDRESS: no answer.model_url
    reindex!
    settings = RedmineRag.settings
    assert RedmineRag::Answering.offered?(settings)
    get '/redmine_rag/answer', params: { q: QUESTION, types: %w[issue] }
    assert_response :no_content
    assert_not RedmineRag::Answering.offered?(settings), 'FAILED_PRECONDITION hides the box for a while'
    get '/search', params: { q: QUESTION, issues: 1 }
    assert_equal 'ragd', response.headers['X-Redmine-Rag']
    assert_nil ask_box
  ensure
    RedmineRag::Answering.model_back!(settings) if settings
  end

  def test_ragd_down_hides_the_box
    rag_settings('address' => dead_address)
    get '/redmine_rag/answer', params: { q: QUESTION, types: %w[issue] }
    assert_response :no_content
  end

  def test_no_permission_no_ragd_call
    spy = spy_on_ragd
    Role.anonymous.remove_permission!(:view_issues)
    get '/redmine_rag/answer', params: { q: QUESTION, types: %w[issue journal] }
    assert_response :no_content
    assert_equal 0, spy.calls[:answer]
  end

  # The index follows the job queue: issue 1, made private a moment ago (its
  # job not run yet), is still public in ragd. Anonymous may no longer see it:
  # ragd's passages include it, so nothing of the answer is shown.
  def test_a_passage_redmine_now_hides_stops_the_answer
    RedmineRag::Sync.suspended { Issue.find(1).update!(is_private: true) }
    filter = RedmineRag::Permissions.filter(User.anonymous, nil, %w[issue journal])
    hits = rag_client.search(QUESTION, top_k: 3, filter: filter, mode: :hybrid, group_by_document: true)
    assert_includes hits.document_ids, 'issue:1', 'ragd still holds issue 1 as public (the premise)'
    spy = spy_on_ragd
    get '/redmine_rag/answer', params: { q: QUESTION, types: %w[issue journal] }
    assert_response :no_content
    assert_equal 1, spy.calls[:answer]
  end
end
