# frozen_string_literal: true

require File.expand_path('../test_helper', __dir__)

# The similar-issues panel and the duplicate suggestions, against the real daemon.
module RedmineRag::PanelTestHelper
  def ids = JSON.parse(response.body)['issues'].map { |i| i['id'] }

  # JSON is an API request: Redmine authenticates it by key, not by session.
  def get_json(action, user_id, params)
    params = params.merge(format: 'json')
    params[:key] = User.find(user_id).api_key if user_id
    with_settings(rest_api_enabled: '1') { get action, params: params }
  end
end

class RedmineRag::SimilarIssuesControllerTest < Redmine::ControllerTest
  include RedmineRag::TestHelper
  include RedmineRag::PanelTestHelper
  fixtures(*RedmineRag::TestHelper::FIXTURES)
  tests RedmineRag::SimilarIssuesController

  def setup
    rag_settings
    reindex!
  end

  def test_similar_issues_without_the_issue_and_its_relations
    get_json :show, 2, id: 1
    assert_response :success
    got = ids
    assert_not_includes got, 1
    related = Issue.find(1).relations.flat_map { |r| [r.issue_from_id, r.issue_to_id] } - [1]
    assert_empty got & related
    assert_equal RedmineRag.settings.similar_count, got.size
    scores = JSON.parse(response.body)['issues'].map { |i| i['score'] }
    assert_equal scores.sort.reverse, scores
  end

  def test_only_issues_the_viewer_may_see
    get_json :show, nil, id: 1 # anonymous
    assert_response :success
    visible = Issue.visible(User.anonymous).pluck(:id)
    assert_empty ids - visible
    assert_not_includes ids, 14, 'private'
  end

  def test_the_panel_html_has_scores
    @request.session[:user_id] = 2
    get :show, params: { id: 3 }
    assert_select 'table.redmine-rag-similar-list tr.issue td.redmine-rag-score', RedmineRag.settings.similar_count
  end

  def test_an_issue_the_viewer_may_not_see_is_not_found
    get :show, params: { id: 14 }
    assert_response :not_found
  end

  def test_ragd_down_says_unavailable
    rag_settings('address' => dead_address)
    @request.session[:user_id] = 2
    get :show, params: { id: 1 }
    assert_response :success
    assert_select '.redmine-rag-unavailable'
  end

  def test_an_issue_not_indexed_yet
    Issue.where(id: 7).update_all(subject: 'x') # no callbacks
    rag_client.delete(['issue:7'])
    @request.session[:user_id] = 2
    get :show, params: { id: 7 }
    assert_select 'p.nodata', text: /not indexed yet/
  end
end

class RedmineRag::DuplicatesControllerTest < Redmine::ControllerTest
  include RedmineRag::TestHelper
  include RedmineRag::PanelTestHelper
  fixtures(*RedmineRag::TestHelper::FIXTURES)
  tests RedmineRag::DuplicatesController
  shared_collection!

  def setup
    rag_settings
    reindex!
    @request.session[:user_id] = 2
  end

  def test_a_close_subject_finds_the_issue
    get_json :index, 2, project_id: 'ecookbook', subject: 'Recipes cannot be printed'
    assert_response :success
    assert_equal 1, ids.first
  end

  def test_the_suggestions_html
    get :index, params: { project_id: 1, subject: 'Recipes cannot be printed' }
    assert_select 'ul.redmine-rag-duplicate-list li a[href="/issues/1"]'
    assert_select 'ul.redmine-rag-duplicate-list li span.redmine-rag-score'
  end

  # A lookup per pause in typing is not a visit: the project jump box's recently used
  # list (a preference write when its order changes) is left to the form's own request.
  def test_a_lookup_does_not_record_the_project_as_used
    pref = User.find(2).pref
    pref[:recently_used_project_ids] = '3'
    pref.save!
    get :index, params: { project_id: 'ecookbook', subject: 'Recipes cannot be printed' }
    assert_response :success
    assert_equal '3', User.find(2).pref.reload[:recently_used_project_ids].to_s
  end

  def test_short_text_asks_nothing
    spy = spy_on_ragd
    get_json :index, 2, project_id: 1, subject: 'print'
    assert_response :success
    assert_equal [], ids
    assert_equal 0, spy.calls[:search]
  end

  def test_unrelated_text_suggests_nothing
    get_json :index, 2, project_id: 1, subject: 'Quarterly tax declaration of the sailing club'
    assert_equal [], ids
  end

  def test_only_the_project_tree_and_what_the_user_may_see
    get_json :index, 2, project_id: 3, subject: 'Private issue on public project'
    assert_includes ids, 14, 'jsmith wrote it'
    assert_empty ids - Issue.where(project_id: Project.find(3).self_and_descendants.ids).ids
    get_json :index, 3, project_id: 3, subject: 'Private issue on public project' # dlopper: not the author
    assert_not_includes ids, 14
  end

  def test_no_permission_no_call
    spy = spy_on_ragd
    get_json :index, nil, project_id: 2, subject: 'Issue on project two' # anonymous, a private project
    assert_response :not_found
    assert_equal 0, spy.calls[:search]
  end

  def test_ragd_down_is_an_empty_answer
    rag_settings('address' => dead_address)
    get_json :index, 2, project_id: 1, subject: 'Recipes cannot be printed'
    assert_response :success
    assert_equal [], ids
  end
end

class RedmineRag::AdminControllerTest < Redmine::ControllerTest
  include RedmineRag::TestHelper
  fixtures(*RedmineRag::TestHelper::FIXTURES)
  tests RedmineRag::AdminController

  def setup
    rag_settings
  end

  def test_status_page_shows_health_counts_and_failures
    reindex!
    rag_client.delete(['issue:3'])
    RedmineRag::Failure.record!('issue:9', state: 'refused', reason: 'documents[0].text: empty')
    @request.session[:user_id] = 1
    get :show
    assert_response :success
    assert_select '#redmine-rag-daemon .redmine-rag-ok'
    assert_select '#redmine-rag-daemon', text: /all-MiniLM-L6-v2 384-d/
    assert_select '#redmine-rag-inventory tr.redmine-rag-behind', 1
    assert_select '#redmine-rag-sync-state', text: /behind/
    assert_select '#redmine-rag-failure-counts', text: /refused by ragd: 1/
    assert_select 'table.redmine-rag-failures td', text: 'documents[0].text: empty'
  end

  def test_ragd_down_is_shown
    rag_settings('address' => dead_address, 'search_timeout' => '1')
    @request.session[:user_id] = 1
    get :show
    assert_response :success
    assert_select '#redmine-rag-daemon .redmine-rag-down'
  end

  def test_admins_only
    @request.session[:user_id] = 2
    get :show
    assert_response :forbidden
  end
end
