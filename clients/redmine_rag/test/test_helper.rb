# frozen_string_literal: true

# Redmine's own test helper (scripts/redmine/test.sh extracts Redmine's test/
# tree from the Debian source package), then what the plugin's tests share.
require File.expand_path('../../../test/test_helper', __dir__)
require 'securerandom'

module RedmineRag
  # Every test talks to the real ragd daemon the test script started
  # ($RAGD_ADDRESS), in a collection of its own, so tests never see each other.
  module TestHelper
    def self.address
      ENV.fetch('RAGD_ADDRESS') do
        raise 'RAGD_ADDRESS is not set: run the plugin tests with scripts/redmine/test.sh, which starts ragd'
      end
    end

    def rag_settings(overrides = {})
      values = RedmineRag::Settings::DEFAULTS.merge('address' => RedmineRag::TestHelper.address,
                                                    'collection' => @rag_collection ||= "t#{SecureRandom.hex(6)}",
                                                    'search_timeout' => '30', 'index_timeout' => '120')
      Setting.plugin_redmine_rag = values.merge(overrides.transform_keys(&:to_s))
      Setting.clear_cache
    end

    def rag_client = RedmineRag.client

    # ids in ragd of this test's collection (RAGD: the daemon, not a mock).
    def ragd_ids(types: nil) = rag_client.list_documents(types: types).map(&:id).sort

    def reindex!(**options) = RedmineRag::Reindexer.new(**options).run
  end
end
