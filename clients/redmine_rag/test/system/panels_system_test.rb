# frozen_string_literal: true

require File.expand_path('../test_helper', __dir__)
require 'capybara/rails'
require 'selenium-webdriver'

# In a real browser (Debian's chromium, headless, through chromedriver): the
# search page ranked by ragd, the similar-issues panel filled after the issue
# page loads, duplicate suggestions appearing while a subject is typed, and the
# Ask box streaming an answer (or disappearing without an answer model).
# Redmine's own ApplicationSystemTestCase needs the webdrivers gem (not in
# Debian), hence this base class; --no-sandbox because CI runs as root.
class RedmineRag::SystemTestCase < ActionDispatch::SystemTestCase
  Capybara.server = :puma, { Silent: true }
  Capybara.default_max_wait_time = 60 # a loaded 2-core machine: wait on the page, never sleep
  driven_by :selenium, using: :headless_chrome, screen_size: [1280, 900] do |options|
    %w[--no-sandbox --disable-dev-shm-usage --disable-gpu].each { |arg| options.add_argument(arg) }
  end

  def log_in(login, password)
    visit '/login'
    within('#login-form form') do
      fill_in 'username', with: login
      fill_in 'password', with: password
      find('input[name=login]').click
    end
    assert_selector '#loggedas'
  end
end

class RedmineRag::PanelsSystemTest < RedmineRag::SystemTestCase
  include RedmineRag::TestHelper
  fixtures(*RedmineRag::TestHelper::FIXTURES)
  shared_collection!

  def setup
    rag_settings
    reindex!
    log_in('jsmith', 'jsmith')
  end

  def test_search_page_ranked_by_ragd
    visit '/search?q=printing+cooking+instructions+fails&issues=1'
    assert_selector '#redmine-rag-search-notice', text: 'ranked by semantic search'
    assert_equal '/issues/1', URI(first('#search-results dt a')[:href]).path
    # the notice was moved above the results
    assert page.evaluate_script("document.getElementById('redmine-rag-search-notice').nextElementSibling.id") =~ /search-results/
  end

  def test_similar_issues_appear_under_the_description
    visit '/issues/1'
    assert_selector '#redmine-rag-similar table.redmine-rag-similar-list tr.issue', count: RedmineRag.settings.similar_count
    refute_selector '#redmine-rag-similar a[href="/issues/1"]'
  end

  def test_duplicate_suggestions_while_typing
    spy = spy_on_ragd
    visit '/projects/ecookbook/issues/new'
    assert_selector '#redmine-rag-duplicates', visible: :hidden
    fill_in 'issue_subject', with: 'Recipe'
    # short: no suggestion and no lookup (give the debounce time to fire on a real signal:
    # the next, longer text does produce a lookup, which must be the first)
    fill_in 'issue_subject', with: 'Recipes cannot be printed'
    assert_selector '#redmine-rag-duplicates a[href="/issues/1"]'
    assert_equal 1, spy.calls[:search], 'one lookup for the settled text, none for the short one'
    fill_in 'issue_subject', with: 'Rec'
    assert_selector '#redmine-rag-duplicates', visible: :hidden
  end
end

# The Ask box in the browser: the answer streamed by the daemon with an answer
# model ($REDMINE_RAG_ANSWER_ADDRESS, a real llama-server behind it) fills the
# box above the results, with its sources linked; the daemon without one
# ($RAGD_ADDRESS) makes the box disappear.
class RedmineRag::AnswerSystemTest < RedmineRag::SystemTestCase
  include RedmineRag::TestHelper
  fixtures(*RedmineRag::TestHelper::FIXTURES)

  QUESTION_URL = '/search?q=Why+can+I+not+print+recipes%3F&issues=1'

  def test_a_question_is_answered_above_the_results
    rag_settings(RedmineRag::TestHelper.secure_settings)
    reindex!
    log_in('jsmith', 'jsmith')
    visit QUESTION_URL
    assert_selector '#redmine-rag-answer.redmine-rag-answer-done .redmine-rag-answer-text p'
    assert_selector '#redmine-rag-answer .redmine-rag-answer-sources a[href="/issues/1"]'
    assert_equal 'redmine-rag-answer',
                 page.evaluate_script("document.getElementById('redmine-rag-search-notice').nextElementSibling.id")
  end

  def test_the_box_disappears_without_an_answer_model
    rag_settings
    reindex!
    assert RedmineRag::Answering.offered?(RedmineRag.settings)
    visit QUESTION_URL
    assert_selector '#redmine-rag-search-notice', text: 'ranked by semantic search'
    assert_no_selector '#redmine-rag-answer'
    assert_not RedmineRag::Answering.offered?(RedmineRag.settings), 'the box asked, and ragd said it has no model'
  ensure
    RedmineRag::Answering.model_back!(RedmineRag.settings)
  end
end
