# frozen_string_literal: true

# ragd semantic search for Redmine and RedMica: the plugin's entry points.
#
# Redmine 5 loads this directory with Zeitwerk (one constant per file, eager
# loaded in production). The ragd-client gem is required lazily, by
# RedmineRag.client, so nothing touches grpc while Rails boots: the Puma or
# Unicorn master must never use grpc before it forks its workers.
module RedmineRag
  VERSION = '0.1.0'
  LOG_TAG = '[redmine_rag]'

  class << self
    def settings = Settings.current

    # The ragd client of this process. Ragd::Client creates its grpc channel on
    # first use and again in every forked worker, so building it here is safe.
    # Rebuilt when the connection settings change.
    def client
      s = settings
      key = s.connection_key
      @client = nil if @client_key != key
      @client_key = key
      @client ||= begin
        require 'ragd/client'
        Ragd::Client.new(s.address, timeout: s.index_timeout, stream_timeout: s.stream_timeout,
                                    collection: s.collection, **s.connection_options)
      end
    end

    def logger = Rails.logger

    def log(level, message) = logger&.public_send(level, "#{LOG_TAG} #{message}")
  end
end
