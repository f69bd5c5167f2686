# frozen_string_literal: true

require File.expand_path('../test_helper', __dir__)

class RedmineRag::PluginTest < ActiveSupport::TestCase
  include RedmineRag::TestHelper

  def setup = rag_settings

  def test_registered_with_its_settings
    plugin = Redmine::Plugin.find(:redmine_rag)
    assert_equal RedmineRag::VERSION, plugin.version
    assert_equal RedmineRag::TestHelper.address, RedmineRag.settings.address
  end

  def test_grpc_from_debian_and_the_vendored_gem
    assert_equal '1.51.1', GRPC::VERSION
    assert_match %r{plugins/redmine_rag/vendor/ragd-client/lib/ragd/client\.rb\z},
                 $LOADED_FEATURES.grep(%r{ragd/client\.rb\z}).first
  end

  def test_ragd_answers
    stats = rag_client.stats
    assert_equal 384, stats.model.dimension
  end
end
