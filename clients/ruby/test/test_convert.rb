# frozen_string_literal: true

require "test_helper"
require "date"

# Offline: conversions between plain Ruby values and ragd.v1 messages, and the error table.
class TestConvert < Minitest::Test
  C = Ragd::Convert

  def test_document_from_hash_with_string_or_symbol_keys
    msg = C.document("id" => "issue:1", :text => "body", :title => "t", :project_id => "3", :is_private => 1,
                     :author_id => 7, :version => 2, :metadata => { tracker: 1 }, :viewer_ids => [9, nil, "10"],
                     :updated_at => "2026-11-01T10:00:00Z")
    assert_equal ["issue:1", "body", "t", 3, true, 7, 2], [msg.id, msg.text, msg.title, msg.project_id, msg.is_private,
                                                           msg.author_id, msg.version]
    assert_equal({ "tracker" => "1" }, msg.metadata.to_h)
    assert_equal [9, 10], msg.viewer_ids.to_a
    assert_equal Time.utc(2026, 11, 1, 10).to_i, msg.updated_at.seconds
  end

  def test_document_struct_and_times
    t = Time.at(1_700_000_000, 123_456_789, :nsec)
    msg = C.document(Ragd::Document.new(id: "a", text: "x", updated_at: t))
    assert_equal [1_700_000_000, 123_456_789], [msg.updated_at.seconds, msg.updated_at.nanos]
    assert_nil C.document(id: "a", text: "x").updated_at
    assert_equal Time.utc(2026, 1, 2).to_i, C.timestamp(DateTime.new(2026, 1, 2)).seconds
    assert_equal 5, C.timestamp(5).seconds
  end

  def test_unknown_fields_and_bad_times_are_refused
    err = assert_raises(ArgumentError) { C.document(id: "a", text: "x", project: 3) }
    assert_match(/unknown document field.*project/, err.message)
    assert_raises(ArgumentError) { C.filter(projects: [1]) }
    assert_raises(ArgumentError) { C.timestamp("yesterday") }
    assert_raises(ArgumentError) { C.timestamp(Object.new) }
  end

  def test_filter
    assert_nil C.filter(nil)
    msg = C.filter(Ragd::Filter.new(project_ids: [1, "2"], private_project_ids: [1], user_id: 7, types: [:issue],
                                    metadata_equals: { "k" => 1 }, exclude_ids: ["issue:1"],
                                    metadata_ranges: [{ key: "n", gte: 1 }, { "key" => "m", "lte" => 2.5 }],
                                    updated_after: Time.utc(2026, 1, 1)))
    assert_equal [1, 2], msg.project_ids.to_a
    assert_equal ["issue"], msg.types.to_a
    assert_equal({ "k" => "1" }, msg.metadata_equals.to_h)
    assert_equal 1.0, msg.metadata_ranges[0].gte
    refute msg.metadata_ranges[0].has_lte?
    assert_equal 2.5, msg.metadata_ranges[1].lte
    assert_equal Time.utc(2026, 1, 1).to_i, msg.updated_after.seconds
    assert_nil msg.updated_before
  end

  def test_grants_and_the_fields_they_read
    msg = C.filter(user_id: 7, group_ids: [40, "41"],
                   grants: [Ragd::Grant.new(types: [:issue, "journal"], project_ids: [3], visibility: :all,
                                            private_notes: true),
                            { "types" => ["wiki"], "project_ids" => ["5"], "visibility" => "own", "tracker_ids" => [1] }])
    assert_equal [7, [40, 41]], [msg.user_id, msg.group_ids.to_a]
    g0, g1 = msg.grants.to_a
    assert_equal [%w[issue journal], [3], :VISIBILITY_ALL, [], true],
                 [g0.types.to_a, g0.project_ids.to_a, g0.visibility, g0.tracker_ids.to_a, g0.private_notes]
    assert_equal [["wiki"], [5], :VISIBILITY_OWN, [1], false],
                 [g1.types.to_a, g1.project_ids.to_a, g1.visibility, g1.tracker_ids.to_a, g1.private_notes]
    # No visibility: left unset for the daemon to refuse (INVALID_ARGUMENT naming the field).
    assert_equal :VISIBILITY_UNSPECIFIED, C.grant(types: ["issue"], project_ids: [1]).visibility
    assert_raises(ArgumentError) { C.filter(grants: [{ types: ["issue"], project: [1], visibility: :all }]) }
    assert_raises(ArgumentError) { C.filter(grants: [{ types: ["issue"], project_ids: [1], visibility: :mine }]) }
    doc = C.document(id: "journal:1", text: "x", tracker_id: 2, owner_ids: [7, nil, 40], private_note: 1)
    assert_equal [2, [7, 40], true], [doc.tracker_id, doc.owner_ids.to_a, doc.private_note]
    back = C.document_value(doc)
    assert_equal [2, [7, 40], true], [back.tracker_id, back.owner_ids, back.private_note]
  end

  def test_modes
    assert_equal :SEARCH_MODE_AUTO, C.mode(:auto)
    assert_equal :SEARCH_MODE_VECTOR, C.mode("vector")
    assert_raises(ArgumentError) { C.mode(:semantic) }
  end

  def test_responses_become_plain_objects
    resp = Ragd::V1::SearchResponse.new(
      mode: :SEARCH_MODE_VECTOR, timings: Ragd::V1::Timings.new(total_ms: 3.5),
      hits: [Ragd::V1::Hit.new(document_id: "issue:1", chunk_id: 4, text: "chunk", start: 0, end: 5, score: 0.5,
                               highlights: [Ragd::V1::Span.new(start: 1, end: 3)],
                               document: Ragd::V1::Document.new(
                                 id: "issue:1", metadata: { "a" => "b" }, viewer_ids: [3],
                                 updated_at: Google::Protobuf::Timestamp.new(seconds: 10, nanos: 5)
                               ))]
    )
    result = C.search_result(resp)
    assert_equal :vector, result.mode
    assert_equal 3.5, result.timings.total_ms
    hit = result.first
    assert_instance_of Ragd::Hit, hit
    assert_equal [0, 5], [hit.start, hit.end]
    assert_equal [1...3], hit.highlights
    assert_equal({ "a" => "b" }, hit.document.metadata)
    assert_equal [3], hit.document.viewer_ids
    assert_equal Time.at(10, 5, :nsec).utc, hit.document.updated_at
    assert hit.document.updated_at.utc?
    assert_equal ["issue:1"], result.document_ids

    write = C.write_result(Ragd::V1::UpsertResponse.new(sequence: 9, acks: [
                                                          Ragd::V1::DocumentAck.new(id: "a", status: :ACK_STATUS_INDEXED, chunks: 2),
                                                          Ragd::V1::DocumentAck.new(id: "b", status: :ACK_STATUS_FAILED, error: "x")
                                                        ]))
    assert_equal %i[indexed failed], write.acks.map(&:status)
    assert_equal ["b"], write.failed.map(&:id)
    # IndexStreamResponse has no timings or job id: still a complete WriteResult.
    stream = C.write_result(Ragd::V1::IndexStreamResponse.new(sequence: 1))
    assert_equal ["", 0.0], [stream.job_id, stream.timings.total_ms.to_f]
  end

  def test_enum_values_newer_than_the_stubs_stay_integers
    assert_equal 42, C.enum_name(42, "ACK_STATUS_")
  end

  def test_stats
    resp = Ragd::V1::StatsResponse.new(version: "1", collections: [Ragd::V1::CollectionStats.new(name: "c", documents: 2)],
                                       model: Ragd::V1::ModelInfo.new(name: "m", dimension: 384))
    stats = C.stats(resp)
    assert_equal [["c", 2]], stats.collections.map { |c| [c.name, c.documents] }
    assert_equal 384, stats.model.dimension
  end
end

# Offline: Client#answer's request and events.
class TestAnswerConvert < Minitest::Test
  C = Ragd::Convert
  V1 = Ragd::V1

  def test_answer_request
    req = C.answer_request("c", "Why?", { project_ids: [1] }, { top_k: 3, max_tokens: 9, language: :ja,
                                                                group_by_document: 1 })
    assert_equal ["c", "Why?", 3, [1], 9, "ja", true], [req.collection, req.question, req.top_k,
                                                        req.filter.project_ids.to_a, req.max_tokens, req.language,
                                                        req.group_by_document]
    refute req.has_temperature?, "unset temperature: the daemon's default"
    assert_in_delta 0.5, C.answer_request("c", "q", nil, { temperature: 0.5 }).temperature
    err = assert_raises(ArgumentError) { C.answer_request("c", "q", nil, { topk: 3 }) }
    assert_match(/unknown answer option.*topk/, err.message)
  end

  def test_answer_events
    ctx = C.answer_event(V1::AnswerResponse.new(context: V1::AnswerContext.new(
      expanded: true, passages: [V1::Hit.new(document_id: "issue:1", text: "t", document: V1::Document.new(id: "issue:1"))]
    )))
    assert_instance_of Ragd::AnswerContext, ctx
    assert_equal [["issue:1"], true], [ctx.passages.map(&:document_id), ctx.expanded]
    assert_equal Ragd::AnswerDelta.new(text: "Hi"), C.answer_event(V1::AnswerResponse.new(delta: "Hi"))
    done = C.answer_event(V1::AnswerResponse.new(done: V1::AnswerDone.new(
      text: "X [1] [7]", grounding: :GROUNDING_UNCITED, invalid_citations: [7], finish_reason: "stop",
      citations: [V1::Citation.new(passage: 1, document_id: "issue:1", chunk_id: 5, start: 2, end: 9, score: 0.5)],
      usage: V1::TokenUsage.new(prompt_tokens: 30, completion_tokens: 4),
      timings: V1::AnswerTimings.new(first_token_ms: 12.5)
    )))
    assert_equal [:uncited, [7], "stop", 30, 4, 12.5], [done.grounding, done.invalid_citations, done.finish_reason,
                                                        done.usage.prompt_tokens, done.usage.completion_tokens,
                                                        done.timings.first_token_ms]
    assert done.flagged?
    assert_equal [1, "issue:1", 5, 2, 9], done.citations.map { |c| [c.passage, c.document_id, c.chunk_id, c.start, c.end] }.first
    assert_nil C.answer_event(V1::AnswerResponse.new), "an event kind newer than the gem is skipped"
  end

  def test_search_result_complex
    assert C.search_result(V1::SearchResponse.new(complex: true)).complex
    refute C.search_result(V1::SearchResponse.new).complex
  end
end

class TestErrors < Minitest::Test
  Codes = GRPC::Core::StatusCodes

  def status(code, details = "boom", metadata = {})
    GRPC::BadStatus.new_status_exception(code, details, metadata)
  end

  def test_status_codes_map_to_classes
    { Codes::INVALID_ARGUMENT => Ragd::InvalidArgument, Codes::NOT_FOUND => Ragd::NotFound,
      Codes::UNAVAILABLE => Ragd::Unavailable, Codes::DEADLINE_EXCEEDED => Ragd::Unavailable,
      Codes::RESOURCE_EXHAUSTED => Ragd::ResourceExhausted, Codes::UNIMPLEMENTED => Ragd::Unimplemented,
      Codes::FAILED_PRECONDITION => Ragd::FailedPrecondition, Codes::INTERNAL => Ragd::Error }.each do |code, klass|
      err = Ragd::Errors.from_status(status(code), "h:1")
      assert_instance_of klass, err
      assert_equal code, err.code
      assert_match(/boom \(ragd at h:1\)/, err.message)
    end
    assert_match(/\ADEADLINE_EXCEEDED: /, Ragd::Errors.from_status(status(Codes::DEADLINE_EXCEEDED), "h").message)
  end

  def test_retry_after
    err = Ragd::Errors.from_status(status(Codes::RESOURCE_EXHAUSTED, "full", { "retry-after-ms" => "250" }), "h")
    assert_in_delta 0.25, err.retry_after
    assert_nil Ragd::Errors.from_status(status(Codes::RESOURCE_EXHAUSTED), "h").retry_after
  end

  def test_grpc_fork_refusal_becomes_a_fork_error
    client = Ragd::Client.new("h:1")
    err = client.send(:translate, RuntimeError.new("grpc cannot be used before and after forking"))
    assert_instance_of Ragd::ForkError, err
    assert_match(/Configure Ragd::Client before forking but make no call until the worker runs/, err.message)
    assert_match(/Cause: grpc cannot be used before and after forking/, err.message)
    refute_kind_of Ragd::Unavailable, err # a deployment bug must not be swallowed by a fallback
    other = RuntimeError.new("something else")
    assert_same other, client.send(:translate, other)
  end
end

class TestClientOffline < Minitest::Test
  include RagdTest

  def test_new_creates_no_channel
    # Creating a channel initialises grpc, which a forked child could then not use.
    client = Ragd::Client.new("127.0.0.1:1")
    assert_nil client.instance_variable_get(:@stub)
  end

  def test_a_child_of_a_process_that_used_grpc_is_refused_without_calling_grpc
    saved = Ragd::Client.instance_variable_get(:@grpc_pid)
    Ragd::Client.instance_variable_set(:@grpc_pid, Process.pid + 1) # as if inherited from a parent
    client = Ragd::Client.new("127.0.0.1:1")
    err = nil
    took = elapsed { err = assert_raises(Ragd::ForkError) { client.search("x") } }
    assert_match(/forked from a process that had already used grpc/, err.message)
    assert_nil client.instance_variable_get(:@channel), "grpc must not even be asked"
    assert_operator took, :<, 0.5
    # A grpc with fork support, set up by the application: grpc decides.
    ENV["GRPC_ENABLE_FORK_SUPPORT"] = "1"
    assert_raises(Ragd::Unavailable) { client.stats(timeout: 2) }
  ensure
    ENV.delete("GRPC_ENABLE_FORK_SUPPORT")
    Ragd::Client.instance_variable_set(:@grpc_pid, saved)
  end

  def test_arguments
    assert_raises(ArgumentError) { Ragd::Client.new("h:1", timeout: 0) }
    client = Ragd::Client.new("127.0.0.1:1")
    assert_raises(ArgumentError) { client.search("q", mode: :fuzzy) }
    assert_raises(ArgumentError) { client.index_stream([], batch_size: 0) }
  end

  def test_refused_connection_is_unavailable_quickly
    port = TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] } # a port nobody listens on any more
    client = Ragd::Client.new("127.0.0.1:#{port}", timeout: 10)
    err = nil
    took = elapsed { err = assert_raises(Ragd::Unavailable) { client.search("q") } }
    assert_equal GRPC::Core::StatusCodes::UNAVAILABLE, err.code
    assert_operator took, :<, 5, "a refused connection must fail fast, not wait for the deadline"
    assert_match "127.0.0.1:#{port}", err.message
  end
end
