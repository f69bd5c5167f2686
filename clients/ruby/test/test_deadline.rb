# frozen_string_literal: true

require "test_helper"

# Offline: a server that stalls must cost a caller its deadline and no more, and
# #index_stream must end (acks, errors, early exits) without ever hanging. Against
# a TCP port that accepts and never speaks, and an in-process grpc server whose
# handlers stall or fail on purpose.
class TestDeadline < Minitest::Test
  include RagdTest

  # A RagService with misbehaviour on demand.
  class FakeRag < Ragd::V1::RagService::Service
    attr_accessor :released, :fail_after

    def initialize
      super
      @released = false
      @fail_after = nil
    end

    def search(_req, _call)
      stall
      Ragd::V1::SearchResponse.new
    end

    # Acks each message, or stalls when a document's text is "stall", or fails after fail_after messages.
    def index_stream(requests, _call)
      Enumerator.new do |y|
        requests.each_with_index do |req, i|
          raise GRPC::InvalidArgument, "documents[0].text: refused on purpose" if fail_after && i >= fail_after

          stall if req.documents.any? { |d| d.text == "stall" }
          acks = req.documents.map { |d| Ragd::V1::DocumentAck.new(id: d.id, status: :ACK_STATUS_INDEXED, chunks: 1) }
          y << Ragd::V1::IndexStreamResponse.new(acks: acks, sequence: i + 1)
        end
      end
    end

    private

    def stall
      limit = Time.now + 20
      sleep 0.02 until released || Time.now > limit
    end
  end

  def setup
    @fake = FakeRag.new
    @server = GRPC::RpcServer.new(pool_size: 4)
    port = @server.add_http2_port("127.0.0.1:0", :this_port_is_insecure)
    @server.handle(@fake)
    @thread = Thread.new { @server.run }
    @server.wait_till_running(5)
    @client = Ragd::Client.new("127.0.0.1:#{port}", timeout: 0.5, stream_timeout: 1.0)
  end

  def teardown
    @fake.released = true
    @client.close
    @server.stop
    @thread.join(5)
  end

  # An unreadable TLS file is a Ragd::Error naming it (a caller that falls back on
  # Ragd::Error does), not an Errno escaping from the first call.
  def test_an_unreadable_tls_file_is_a_ragd_error
    client = Ragd::Client.new("127.0.0.1:1", ca_file: "/nonexistent/ca.pem", timeout: 1)
    err = assert_raises(Ragd::Error) { client.stats }
    assert_match(%r{TLS settings .*/nonexistent/ca\.pem}, err.message)
  end

  def test_stalled_handler_raises_unavailable_at_the_deadline
    err = nil
    took = elapsed { err = assert_raises(Ragd::Unavailable) { @client.search("anything") } }
    assert_equal GRPC::Core::StatusCodes::DEADLINE_EXCEEDED, err.code
    assert_in_delta 0.5, took, 1.5
  end

  def test_per_call_timeout_overrides_the_client_default
    took = elapsed { assert_raises(Ragd::Unavailable) { @client.search("anything", timeout: 0.2) } }
    assert_operator took, :<, 1.5
  end

  def test_silent_tcp_peer_raises_unavailable_at_the_deadline
    # Accepts the connection and never says a word: no HTTP/2 settings, no status.
    server = TCPServer.new("127.0.0.1", 0)
    held = []
    acceptor = Thread.new { loop { held << server.accept } }
    client = Ragd::Client.new("127.0.0.1:#{server.addr[1]}", timeout: 0.5)
    took = elapsed { assert_raises(Ragd::Unavailable) { client.stats } }
    assert_operator took, :<, 3
  ensure
    acceptor&.kill
    held&.each(&:close)
    server&.close
  end

  def test_index_stream_acks_every_batch_in_order
    docs = (1..25).map { |i| { id: "d#{i}", text: "text #{i}" } }
    seen = []
    batches = @client.index_stream(docs, batch_size: 10, timeout: 5) { |r| seen << r }
    assert_equal 3, batches
    assert_equal (1..25).map { |i| "d#{i}" }, seen.flat_map { |r| r.acks.map(&:id) }
    assert_equal [1, 2, 3], seen.map(&:sequence)
    # Without a block: the results. Any Enumerable will do, lazy ones included.
    results = @client.index_stream((1..5).lazy.map { |i| { id: "l#{i}", text: "x" } }, batch_size: 2, timeout: 5)
    assert_equal [2, 2, 1], results.map { |r| r.acks.size }
  end

  def test_index_stream_stalled_server_hits_the_stream_deadline
    docs = [{ id: "a", text: "fine" }, { id: "b", text: "stall" }]
    took = elapsed { assert_raises(Ragd::Unavailable) { @client.index_stream(docs, batch_size: 1) { nil } } }
    assert_in_delta 1.0, took, 1.5
  end

  def test_index_stream_server_error_midway
    @fake.fail_after = 2
    docs = (1..100).map { |i| { id: "d#{i}", text: "t" } }
    acked = []
    err = assert_raises(Ragd::InvalidArgument) do
      @client.index_stream(docs, batch_size: 10, timeout: 5) { |r| acked.concat(r.acks.map(&:id)) }
    end
    assert_match "refused on purpose", err.message
    assert_equal (1..20).map { |i| "d#{i}" }, acked # what was acked before the error was delivered
  end

  def test_index_stream_bad_document_midway_cancels_the_call
    docs = [{ id: "a", text: "x" }, { id: "b", text: "x", projekt: 1 }]
    took = elapsed do
      assert_raises(ArgumentError) { @client.index_stream(docs, batch_size: 1, timeout: 5) { nil } }
    end
    assert_operator took, :<, 3
  end

  def test_index_stream_exception_in_block_cancels_the_call
    docs = (1..50).map { |i| { id: "d#{i}", text: "t" } }
    took = elapsed do
      assert_raises(ZeroDivisionError) { @client.index_stream(docs, batch_size: 5, timeout: 5) { |_r| 1 / 0 } }
    end
    assert_operator took, :<, 3
    # The client is still usable afterwards.
    assert_equal 1, @client.index_stream([{ id: "z", text: "t" }], timeout: 5).size
  end
end
