# frozen_string_literal: true

require File.expand_path('../test_helper', __dir__)

# The plugin's connection settings against ragd as it runs on a network: the
# test script's second daemon serves only over mutual TLS and to a bearer token
# of scopes search and write (`ragd tls selfsigned`, `ragd token create`). With
# the token, the CA and the client certificate the plugin indexes and searches;
# a wrong token or no client certificate makes the search page fall back to
# Redmine's own search (never an error page). The token is write-only in the
# settings page.
class RedmineRag::SecureIntegrationTest < Redmine::IntegrationTest
  include RedmineRag::TestHelper
  fixtures(*RedmineRag::TestHelper::FIXTURES)
  shared_collection!

  def secure = RedmineRag::TestHelper.secure_settings

  def search_as_jsmith
    @logged_in ||= log_user('jsmith', 'jsmith') || true
    get '/search', params: { q: 'printing cooking instructions fails', issues: 1 }
    assert_response :success
    response.headers['X-Redmine-Rag']
  end

  def test_token_and_mutual_tls_index_and_search
    rag_settings(secure)
    summary = reindex!
    assert_operator summary.indexed + summary.unchanged, :>, 0
    assert_equal({}, summary.failed)
    assert_equal 'ragd', search_as_jsmith
    assert_equal '/issues/1', css_select('#search-results dt a').first['href']
  end

  def test_a_wrong_token_or_no_client_certificate_falls_back
    rag_settings(secure.merge('token' => 'ragd_not-a-token'))
    assert_equal 'fallback', search_as_jsmith
    assert_select '#redmine-rag-search-notice.flash.warning'
    assert_raises(Ragd::Unauthenticated) { RedmineRag.client.stats }

    rag_settings(secure.except('tls_client_cert_file', 'tls_client_key_file').merge('search_timeout' => '10'))
    assert_equal 'fallback', search_as_jsmith
  end

  def test_the_token_is_write_only_on_the_settings_page
    rag_settings(secure)
    token = secure['token']
    log_user('admin', 'admin')
    get '/settings/plugin/redmine_rag'
    assert_response :success
    assert_not_includes response.body, token
    assert_select 'input[name=?][type=password]:not([value])', 'settings[token]'
    assert_select 'input[name=?]', 'settings[token_clear]'

    post '/settings/plugin/redmine_rag', params: { settings: settings_form.merge('token' => '') }
    assert_equal token, RedmineRag.settings['token'], 'an empty field keeps the stored token'
    assert_equal secure['tls_client_cert_file'], RedmineRag.settings['tls_client_cert_file']

    post '/settings/plugin/redmine_rag', params: { settings: settings_form.merge('token' => 'ragd_new') }
    assert_equal 'ragd_new', RedmineRag.settings['token']

    post '/settings/plugin/redmine_rag', params: { settings: settings_form.merge('token_clear' => '1') }
    assert_equal '', RedmineRag.settings['token'].to_s
    get '/settings/plugin/redmine_rag'
    assert_select 'input[name=?]', 'settings[token_clear]', count: 0
  end

  private

  # What the settings form posts: every field but the token as it shows them.
  def settings_form
    RedmineRag.settings.to_h.except('token').transform_values do |v|
      v.is_a?(Array) ? v.map(&:to_s) : v.to_s
    end
  end
end
