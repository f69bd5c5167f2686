# frozen_string_literal: true

require "json"
require "grpc"
require "ragd/v1/ragd_services_pb"
require "ragd/version"
require "ragd/errors"
require "ragd/types"
require "ragd/convert"

module Ragd
  # A thin client for the ragd daemon, safe in forking servers (Puma, Unicorn,
  # Passenger) and bounded in time:
  #
  # * Nothing grpc is created in #initialize. Creating a channel (even without a
  #   call) initialises grpc in the process, and grpc 1.51 then refuses to work in
  #   any forked child. The stub is built on first use and memoised per
  #   Process.pid, so each worker gets its own channel, rebuilt after fork.
  # * Every call carries a deadline (`timeout`, or `stream_timeout` for
  #   #index_stream and #answer), so a stalled daemon can never hang a worker.
  # * UNAVAILABLE and DEADLINE_EXCEEDED raise Ragd::Unavailable: rescue it and
  #   fall back to Redmine's own search. A child whose parent already used grpc
  #   gets Ragd::ForkError at once.
  #
  # One client may be shared by the threads of a process (the grpc stub is thread-safe).
  class Client
    # The call policy, the same as the Python client's (clients/python/ragd_client/policy.py
    # explains the numbers; tests/test_client_policy.py keeps the two equal):
    # 10 s per unary call, 600 s per stream, and UNAVAILABLE retried by gRPC
    # itself within the deadline, at most 5 attempts from 0.2 s doubling to 2 s,
    # on every method: all are idempotent (upsert replaces, delete removes, the rest read).
    DEFAULT_ADDRESS = "127.0.0.1:50051"
    TIMEOUT_S = 10.0
    STREAM_TIMEOUT_S = 600.0
    RETRY_POLICY = { maxAttempts: 5, initialBackoff: "0.2s", maxBackoff: "2s", backoffMultiplier: 2,
                     retryableStatusCodes: ["UNAVAILABLE"] }.freeze
    SERVICE_CONFIG = JSON.generate(
      methodConfig: [{ name: [{ service: "ragd.v1.RagService" }], retryPolicy: RETRY_POLICY }]
    )
    MAX_MESSAGE_BYTES = 64 * 1024 * 1024

    attr_reader :address, :timeout, :stream_timeout, :collection

    # address:        "host:port" of `ragd serve` (default: $RAGD_ADDRESS or 127.0.0.1:50051).
    # timeout:        seconds allowed to each unary call (search, upsert, ...).
    # stream_timeout: seconds allowed to a whole #index_stream or #answer.
    # token:          bearer token sent on every call (default: $RAGD_TOKEN; `ragd token create`).
    # ca_file:        CA bundle (PEM) verifying the daemon's certificate; turns TLS on
    #                 (default: $RAGD_CA_FILE).
    # client_cert_file, client_key_file: a client certificate for a daemon that asks
    #                 for one (mutual TLS; default: $RAGD_CLIENT_CERT_FILE, $RAGD_CLIENT_KEY_FILE).
    # credentials:    a Proc returning GRPC::Core::ChannelCredentials (instead of
    #                 ca_file); a Proc because building credentials initialises grpc
    #                 too, so it must also wait until the first call in each process.
    # Keywords, each with its documented default: more of them read better than an options Hash.
    def initialize(address = ENV.fetch("RAGD_ADDRESS", DEFAULT_ADDRESS), timeout: TIMEOUT_S, # rubocop:disable Metrics/ParameterLists
                   stream_timeout: STREAM_TIMEOUT_S, collection: "default", credentials: nil, channel_args: {},
                   token: ENV.fetch("RAGD_TOKEN", nil), ca_file: ENV.fetch("RAGD_CA_FILE", nil),
                   client_cert_file: ENV.fetch("RAGD_CLIENT_CERT_FILE", nil),
                   client_key_file: ENV.fetch("RAGD_CLIENT_KEY_FILE", nil))
      raise ArgumentError, "timeout must be positive" unless timeout.to_f.positive?

      @address = address
      @timeout = timeout.to_f
      @stream_timeout = stream_timeout.to_f
      @collection = collection
      @credentials = credentials || Client.tls_credentials(ca_file, client_cert_file, client_key_file)
      @metadata = token.to_s.empty? ? {} : { "authorization" => "Bearer #{token}" }
      @channel_args = {
        "grpc.service_config" => SERVICE_CONFIG, "grpc.enable_retries" => 1,
        "grpc.max_receive_message_length" => MAX_MESSAGE_BYTES,
        "grpc.max_send_message_length" => MAX_MESSAGE_BYTES
      }.merge(channel_args)
      @lock = Mutex.new # MRI releases a Mutex held by another thread at fork, so the child can take it
      @stub = @channel = @stub_pid = nil
    end

    # Insert or replace documents (Hashes or Ragd::Document). wait: true returns
    # once every document is durable and searchable (wait: false is not served yet).
    def upsert(documents, wait: true, collection: nil, timeout: nil)
      documents = [documents] if documents.respond_to?(:each_pair) # one Hash or Document, not its pairs
      req = V1::UpsertRequest.new(collection: collection || @collection, wait: wait,
                                  documents: documents.map { |d| Convert.document(d) })
      Convert.write_result(unary(:upsert, req, timeout))
    end

    # Delete by id. versions: { "issue:1" => 7 } makes those deletes versioned: a
    # tombstone then stops an older upsert arriving later from resurrecting them.
    def delete(ids, versions: {}, collection: nil, timeout: nil)
      versions = versions.transform_keys(&:to_s)
      req = V1::DeleteRequest.new(collection: collection || @collection, wait: true)
      Array(ids).map(&:to_s).each do |id|
        versions.key?(id) ? req.refs << V1::DocumentRef.new(id: id, version: versions[id].to_i) : req.ids << id
      end
      Convert.write_result(unary(:delete, req, timeout))
    end

    # mode: :auto (ragd routes the query), :vector, :keyword or :hybrid; a mode the
    # daemon does not serve yet raises Ragd::Unimplemented.
    # filter: a Ragd::Filter or a Hash with its keys.
    def search(query, top_k: 10, filter: nil, mode: :auto, group_by_document: false, min_score: 0.0,
               collection: nil, timeout: nil)
      req = V1::SearchRequest.new(collection: collection || @collection, query: query.to_s, top_k: top_k,
                                  mode: Convert.mode(mode), filter: Convert.filter(filter),
                                  group_by_document: group_by_document, min_score: min_score.to_f)
      Convert.search_result(unary(:search, req, timeout))
    end

    # More like this: documents close to a stored one, excluding itself.
    def similar(document_id, top_k: 10, filter: nil, min_score: 0.0, collection: nil, timeout: nil)
      req = V1::SimilarRequest.new(collection: collection || @collection, document_id: document_id.to_s,
                                   top_k: top_k, filter: Convert.filter(filter), min_score: min_score.to_f)
      Convert.search_result(unary(:similar, req, timeout))
    end

    # Answers a question from the documents `filter` lets the caller see (for Redmine:
    # Ragd::Redmine.filter_for(user)), with citations. With a block, yields each event as
    # it arrives: a Ragd::AnswerContext (the passages), Ragd::AnswerDelta pieces of text,
    # then a Ragd::AnswerDone. Returns the whole Ragd::Answer either way.
    #
    #   answer = client.answer("Why does login fail since the upgrade?", filter: filter) do |event|
    #     stream.write(event.text) if event.is_a?(Ragd::AnswerDelta)
    #   end
    #   answer.cited_passages.map(&:document_id) # => ["issue:12", "wiki:3:Login"]
    #
    # Leaving the block early (break, an exception) cancels the call, which stops the
    # generation. Options: top_k (passages), max_tokens, temperature, language (e.g.
    # current_language.to_s; "" = the question's), group_by_document; unset, the daemon's
    # defaults. Raises Ragd::FailedPrecondition when the daemon has no model server,
    # Ragd::Unavailable when it is down or the deadline (timeout, default stream_timeout) passes.
    def answer(question, filter: nil, collection: nil, timeout: nil, **options)
      req = Convert.answer_request(collection || @collection, question, filter, options)
      op = guard do
        stub.answer(req, deadline: deadline(timeout || @stream_timeout), return_op: true, metadata: @metadata)
      end
      context = done = nil
      finished = false
      begin
        guard do
          op.execute.each do |resp|
            event = Convert.answer_event(resp)
            next if event.nil? # an event kind newer than this gem

            context = event if event.is_a?(AnswerContext)
            done = event if event.is_a?(AnswerDone)
            yield event if block_given?
          end
        end
        finished = true
      ensure
        op.cancel unless finished
      end
      raise Error, "the answer stream ended without its final message (ragd at #{@address})" if done.nil?

      Answer.new(passages: context ? context.passages : [], expanded: context ? context.expanded : false,
                 **done.to_h)
    end

    # collection nil: every collection.
    def stats(collection = nil, timeout: nil)
      Convert.stats(unary(:stats, V1::StatsRequest.new(collection: collection.to_s), timeout))
    end

    # Every stored document's id, type, project and version (no text), as an
    # Enumerator that fetches a page of page_size per call as it is iterated:
    # what a client compares with its own records (missing, stale, gone).
    # types / project_ids narrow the listing; each page has its own deadline.
    def list_documents(types: nil, project_ids: nil, page_size: 1000, collection: nil, timeout: nil)
      Enumerator.new do |y|
        token = ""
        loop do
          req = V1::ListDocumentsRequest.new(collection: collection || @collection, page_size: page_size,
                                             page_token: token, types: Array(types).map(&:to_s),
                                             project_ids: Convert.ints(project_ids))
          resp = unary(:list_documents, req, timeout)
          resp.documents.each { |d| y << Convert.document_info(d) }
          token = resp.next_page_token
          break if token.empty?
        end
      end
    end

    # Streams any Enumerable of documents (e.g. a lazy map over Issue.find_each)
    # in batches of batch_size; each batch is acked once durable and searchable.
    # With a block, yields each batch's Ragd::WriteResult as it arrives and
    # returns the number of batches; without one, returns the results. The
    # deadline (timeout, default stream_timeout) bounds the whole stream.
    #
    # `documents` is enumerated and the block runs in the calling thread (an
    # ActiveRecord cursor stays on its own connection); grpc's threads only ever
    # see finished messages, through a small bounded queue.
    def index_stream(documents, batch_size: 100, collection: nil, timeout: nil, &block)
      raise ArgumentError, "batch_size must be positive" unless batch_size.positive?

      outbox = SizedQueue.new(2) # at most two batches wait for grpc: memory stays bounded
      inbox = Queue.new          # acks, then :eof or the call's error
      requests = Enumerator.new { |y| while (req = outbox.pop) do y << req end } # ends once outbox is closed
      op = guard do
        stub.index_stream(requests, deadline: deadline(timeout || @stream_timeout), return_op: true,
                                    metadata: @metadata)
      end
      reader = Thread.new do
        op.execute.each { |resp| inbox << Convert.write_result(resp) }
        inbox << :eof
      rescue Exception => e # rubocop:disable Lint/RescueException -- handed over to the calling thread
        inbox << e
      ensure
        outbox.close # the call is over: a caller blocked on push must not wait for a reader that is gone
      end

      results = []
      batches = 0
      deliver = lambda do |item|
        raise translate(item) if item.is_a?(Exception)

        batches += 1
        block ? block.call(item) : results << item
      end
      finished = false
      begin
        write_batches(documents, batch_size, collection || @collection, outbox) do
          deliver.call(inbox.pop) until inbox.empty? # the acks that already came back
        end
        while (item = inbox.pop) != :eof
          deliver.call(item)
        end
        finished = true
      ensure
        unless finished # an error, or an exception in the block: do not leave the call running
          op.cancel
          outbox.close
          reader.join(5)
        end
      end
      block ? batches : results
    end

    # Closes this process's channel; the next call opens a new one. A channel
    # inherited from a parent process is left alone (see #stub).
    def close
      @lock.synchronize do
        if @stub_pid == Process.pid
          @channel&.close
        elsif @channel
          (@inherited ||= []) << @channel
        end
        @stub = @channel = @stub_pid = nil
      end
    end

    @live = ObjectSpace::WeakMap.new # clients that opened a channel, for before_fork
    class << self
      # Called just before this process forks (Process._fork, Ruby >= 3.1): closes
      # every channel the process opened. A child that inherits a live channel
      # destroys it when it exits, and grpc 1.51 can then deadlock or abort in the
      # child on locks its parent's threads held at fork: a Puma/Unicorn worker of
      # a master that called ragd would hang on shutdown. Closed first, there is
      # nothing to destroy. The parent reconnects on its next call; calls in flight
      # in other threads at that instant are cancelled (a forking master has none).
      def before_fork
        @live.each_key(&:close)
      end

      # A Proc building TLS channel credentials from PEM files (read at the first
      # call of each process), or nil when no file is given (plaintext).
      def tls_credentials(ca_file, cert_file, key_file)
        return nil if [ca_file, cert_file, key_file].all? { |f| f.to_s.empty? }
        raise ArgumentError, "client_cert_file and client_key_file go together" if cert_file.to_s.empty? != key_file.to_s.empty?

        lambda do
          read = ->(path) { path.to_s.empty? ? nil : File.read(path) }
          GRPC::Core::ChannelCredentials.new(read.call(ca_file), read.call(key_file), read.call(cert_file))
        end
      end

      def track(client)
        @live[client] = true
        @grpc_pid ||= Process.pid
      end

      # True in a child forked after this gem used grpc in an ancestor. The child
      # must not call into grpc at all, not even to be refused: grpc 1.51 takes
      # its global init lock before its fork guard, and a lock held by a parent's
      # thread at fork is held forever in the child, so that call could hang.
      # GRPC_ENABLE_FORK_SUPPORT=1 (a grpc with fork support, set up by the
      # application) hands the decision back to grpc.
      def grpc_inherited?
        !@grpc_pid.nil? && @grpc_pid != Process.pid && ENV["GRPC_ENABLE_FORK_SUPPORT"] != "1"
      end
    end

    def inspect = "#<#{self.class} #{@address} timeout=#{@timeout}#{" tls" if @credentials}#{" token" if @metadata.any?}>"

    private

    # Sends the batches, then half-closes (the daemon acks what it has and ends
    # the stream). Yields after each batch so the caller can hand out acks.
    def write_batches(documents, batch_size, collection, outbox)
      documents.each_slice(batch_size) do |batch|
        outbox.push(V1::IndexStreamRequest.new(collection: collection, documents: batch.map { |d| Convert.document(d) }))
        yield
      end
      outbox.close
    rescue ClosedQueueError
      nil # the call ended before everything was sent; its status is in the inbox
    end

    def unary(method, request, timeout)
      guard { stub.public_send(method, request, deadline: deadline(timeout || @timeout), metadata: @metadata) }
    end

    def deadline(seconds) = Time.now + seconds.to_f

    def guard
      yield
    rescue GRPC::BadStatus, RuntimeError => e
      raise translate(e)
    end

    def translate(err)
      case err
      when Ragd::Error then err
      when GRPC::BadStatus then Errors.from_status(err, @address)
      when RuntimeError then err.message.match?(Errors::FORK_MESSAGE) ? Errors.fork_error(err.message) : err
      else err
      end
    end

    # The TLS credentials, read now (the first call of this process): an unreadable or
    # malformed file is a Ragd::Error naming it, so a caller that falls back on
    # Ragd::Error (the Redmine plugin) does, instead of failing the request.
    def channel_credentials
      @credentials.call
    rescue SystemCallError, RuntimeError, ArgumentError => e
      raise Error, "TLS settings of the ragd client (#{@address}): #{e.message}"
    end

    # The stub of this process: built on first use, and again in a forked child.
    # A channel inherited from the parent (a fork that bypassed Process._fork) is
    # never closed here and stays referenced, so GC cannot destroy it mid-request:
    # that would touch the parent's grpc state.
    def stub
      pid = Process.pid
      return @stub if @stub_pid == pid

      @lock.synchronize do
        next @stub if @stub_pid == pid

        raise Errors.fork_error("ragd was called in an ancestor process before it forked") if Client.grpc_inherited?

        (@inherited ||= []) << @channel if @channel
        creds = @credentials ? channel_credentials : :this_channel_is_insecure
        @channel = GRPC::Core::Channel.new(@address, @channel_args, creds)
        @stub = V1::RagService::Stub.new(@address, :this_channel_is_insecure,
                                         channel_override: @channel, timeout: @timeout)
        @stub_pid = pid
        Client.track(self)
        @stub
      end
    end
  end

  # Runs Client.before_fork in the forking thread just before every fork.
  module ForkHook
    def _fork
      Client.before_fork
      super
    end
  end
  Process.singleton_class.prepend(ForkHook) if Process.respond_to?(:_fork)
end
