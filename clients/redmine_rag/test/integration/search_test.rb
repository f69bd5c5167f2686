# frozen_string_literal: true

require File.expand_path('../test_helper', __dir__)

# Redmine's search page and /search.json answered by ragd (rack-test, the real
# daemon), and Redmine's own search when ragd cannot answer.
class RedmineRag::SearchIntegrationTest < Redmine::IntegrationTest
  include RedmineRag::TestHelper
  fixtures(*RedmineRag::TestHelper::FIXTURES)
  shared_collection!

  def setup
    rag_settings
    reindex!
  end

  def result_links = css_select('#search-results dt a').map { |a| a['href'] }

  def test_the_search_page_is_ranked_by_ragd_within_the_users_permissions
    log_user('jsmith', 'jsmith')
    get '/search', params: { q: 'printing cooking instructions fails', issues: 1 }
    assert_response :success
    assert_equal 'ragd', response.headers['X-Redmine-Rag']
    assert_select '#redmine-rag-search-notice.redmine-rag-ranked'
    assert_equal '/issues/1', result_links.first, 'issue 1 "Cannot print recipes" is the closest'
    get '/search', params: { q: 'private issue on a public project', issues: 1 }
    assert_includes result_links, '/issues/14', 'jsmith wrote the private issue'
  end

  def test_private_issues_stay_hidden_from_who_may_not_see_them
    get '/search', params: { q: 'private issue on a public project', issues: 1 }
    assert_equal 'ragd', response.headers['X-Redmine-Rag']
    assert_not_includes result_links, '/issues/14'
    assert_operator result_links.size, :>, 0
    log_user('dlopper', 'foo')
    get '/search', params: { q: 'private issue on a public project', issues: 1 }
    assert_not_includes result_links, '/issues/14'
  end

  def test_the_rest_api_answers_with_ragd_and_its_passages
    get '/search.json', params: { q: 'error 281 when a recipe is updated', key: User.find(2).api_key },
                        headers: { 'HTTP_X_REDMINE_API_KEY' => User.find(2).api_key }
    assert_response :success
    assert_equal 'ragd', response.headers['X-Redmine-Rag']
    data = JSON.parse(response.body)
    first = data['results'].first
    assert_equal [3, 'issue'], [first['id'], first['type']]
    assert_operator data['total_count'], :>=, data['results'].size
  ensure
    Setting.rest_api_enabled = '0'
  end

  def test_ragd_down_falls_back_to_redmines_own_search_and_says_so
    rag_settings('address' => dead_address)
    log_user('jsmith', 'jsmith')
    get '/search', params: { q: 'recipe', issues: 1 }
    assert_response :success
    assert_equal 'fallback', response.headers['X-Redmine-Rag']
    assert_select '#redmine-rag-search-notice.flash.warning'
    assert_includes result_links, '/issues/1', "Redmine's own search found it"
  end

  def test_ragd_too_slow_falls_back_too
    rag_settings('search_timeout' => '0.001')
    get '/search', params: { q: 'recipe', issues: 1 }
    assert_response :success
    assert_equal 'fallback', response.headers['X-Redmine-Rag']
    assert_includes result_links, '/issues/1'
  end

  def test_titles_only_is_redmines_own_search
    get '/search', params: { q: 'recipe', titles_only: 1 }
    assert_response :success
    assert_nil response.headers['X-Redmine-Rag']
    assert_select '#redmine-rag-search-notice', 0
  end

  def test_open_issues_only
    get '/search', params: { q: 'closed issue on a locked version', issues: 1, open_issues: 1 }
    assert_equal 'ragd', response.headers['X-Redmine-Rag']
    closed = Issue.where(status_id: IssueStatus.where(is_closed: true)).pluck(:id).map { |i| "/issues/#{i}" }
    assert_empty result_links & closed
    assert_operator result_links.size, :>, 0
  end

  def test_no_permission_no_ragd_call
    spy = spy_on_ragd
    Role.anonymous.remove_permission!(:view_issues)
    get '/search', params: { q: 'recipe', issues: 1 }
    assert_response :success
    assert_equal 0, spy.calls[:search]
    assert_equal 'ragd', response.headers['X-Redmine-Rag'] # answered: nothing to see
    assert_empty result_links
  end

  def test_every_ticked_type_is_answered
    log_user('jsmith', 'jsmith')
    get '/search', params: { q: 'eCookbook release recipes', issues: 1, news: 1, wiki_pages: 1 }
    assert_response :success
    assert_equal 'ragd', response.headers['X-Redmine-Rag']
    counts = css_select('#search-results-counts a').map(&:text).join(' ')
    assert_match(/News \(\d+\)/, counts)
    assert_match(/Issues \(\d+\)/, counts)
    get '/search', params: { q: 'eCookbook first release', news: 1 }
    assert_equal '/news/1', result_links.first
  end

  def test_unrelated_questions_find_little
    get '/search', params: { q: 'quantum chromodynamics of gluons', issues: 1 }
    assert_equal 'ragd', response.headers['X-Redmine-Rag']
    assert_operator result_links.size, :<, 3
  end

  def test_later_pages_keep_ragd_passages
    rag_settings('search_max_results' => '30')
    with_settings(search_results_per_page: '3') do
      get '/search', params: { q: 'issue', issues: 1, page: 2 }
      assert_response :success
      assert_equal 3, result_links.size
    end
  end
end
