# frozen_string_literal: true

# Redmine's own test helper (scripts/redmine/test.sh extracts Redmine's test/
# tree from the Debian source package), then what the plugin's tests share.
require File.expand_path('../../../test/test_helper', __dir__)
require 'securerandom'

module RedmineRag
  # Every test talks to the real ragd daemon the test script started
  # ($RAGD_ADDRESS), in a collection of its own, so tests never see each other.
  module TestHelper
    # Redmine's fixtures every plugin test loads (projects, roles, issues and
    # their notes, wiki, news, forums, documents).
    FIXTURES = %i[projects users email_addresses user_preferences roles members member_roles groups_users
                  issues issue_statuses trackers projects_trackers issue_categories enabled_modules enumerations
                  workflows versions journals journal_details issue_relations watchers custom_fields
                  custom_fields_projects custom_fields_trackers custom_values
                  wikis wiki_pages wiki_contents wiki_content_versions news comments boards messages
                  documents attachments].freeze

    def self.address
      ENV.fetch('RAGD_ADDRESS') do
        raise 'RAGD_ADDRESS is not set: run the plugin tests with scripts/redmine/test.sh, which starts ragd'
      end
    end

    # The second daemon of the test script (the one with an answer model) serves only
    # over mutual TLS and to a bearer token (scopes search, write): the plugin settings
    # that reach it. The files come from `ragd tls selfsigned` and `ragd token create`.
    def self.secure_settings
      dir = ENV.fetch('REDMINE_RAG_SECURE_DIR') do
        raise 'REDMINE_RAG_SECURE_DIR is not set: run the plugin tests with scripts/redmine/test.sh'
      end
      { 'address' => ENV.fetch('REDMINE_RAG_ANSWER_ADDRESS'), 'token' => File.read(File.join(dir, 'token')).strip,
        'tls_ca_file' => File.join(dir, 'tls', 'ca.pem'),
        'tls_client_cert_file' => File.join(dir, 'tls', 'redmine.pem'),
        'tls_client_key_file' => File.join(dir, 'tls', 'redmine.key') }
    end

    # ragd's limits.max_document_bytes as the test script started it.
    def self.max_document_bytes = ENV.fetch('RAGD_LIMITS_MAX_DOCUMENT_BYTES', 10 * 1024 * 1024).to_i

    def too_large_text = 'x' * (RedmineRag::TestHelper.max_document_bytes + 1)

    def self.included(base)
      base.extend(ClassMethods)
    end

    module ClassMethods
      # Tests of this class only read from ragd: they share one collection, so
      # Redmine's fixtures are sent once (later reindexes find nothing to do).
      def shared_collection! = (@shared_collection = "s#{SecureRandom.hex(6)}")
      attr_reader :shared_collection
    end

    def rag_settings(overrides = {})
      # Rolled-back fixtures of an earlier test commit nothing: no filter cached then may serve this one.
      RedmineRag::Grants.clear
      @rag_collection ||= self.class.shared_collection || "t#{SecureRandom.hex(6)}"
      values = RedmineRag::Settings::DEFAULTS.merge('address' => RedmineRag::TestHelper.address,
                                                    'collection' => @rag_collection,
                                                    'search_timeout' => '30', 'index_timeout' => '120')
      overrides = overrides.transform_keys(&:to_s)
      # The stored token is write-only (an empty one keeps it): settings without one clear it.
      overrides['token_clear'] = '1' if overrides['token'].to_s.empty?
      Setting.plugin_redmine_rag = values.merge(overrides)
      Setting.clear_cache
    end

    def rag_client = RedmineRag.client

    # ids in ragd of this test's collection (RAGD: the daemon, not a mock).
    def ragd_ids(types: nil) = rag_client.list_documents(types: types).map(&:id).sort

    def reindex!(**options) = RedmineRag::Reindexer.new(**options).run

    # { doc_id => Ragd::DocumentInfo } of what ragd holds in this test's collection.
    def stored(**filters)
      rag_client.list_documents(**filters).to_h { |d| [d.id, d] }
    rescue Ragd::InvalidArgument => e
      raise unless e.message.include?('unknown collection')

      {}
    end

    # ids of the documents that match `query` (vector search, every document a
    # candidate, no permission filter: what ragd holds, not what a user sees).
    def matching(query, top_k: 5, types: nil)
      rag_client.search(query, top_k: top_k, mode: :vector, group_by_document: true,
                               filter: { all_private: true, types: types }).map(&:document_id)
    end

    # Counts the calls the plugin makes to ragd (and makes them, for real).
    class ClientSpy < SimpleDelegator
      attr_reader :calls

      def initialize(client)
        super
        @calls = Hash.new(0)
      end

      %i[search similar answer upsert delete list_documents stats index_stream].each do |name|
        define_method(name) do |*args, **kwargs, &block|
          @calls[name] += 1
          __getobj__.public_send(name, *args, **kwargs, &block)
        end
      end
    end

    def spy_on_ragd
      spy = ClientSpy.new(RedmineRag.client)
      RedmineRag.instance_variable_set(:@client, spy)
      spy
    end

    # An address where nothing listens: ragd "down", as a client sees it.
    def dead_address
      server = TCPServer.new('127.0.0.1', 0)
      port = server.addr[1]
      server.close
      "127.0.0.1:#{port}"
    end
  end
end
