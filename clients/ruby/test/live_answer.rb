# frozen_string_literal: true

require "test_helper"

# Ragd::Client#answer against a daemon with a model server (RAGD_ADDRESS; started,
# with llama-server behind a recording proxy, by tests/test_answer.py, which also
# indexes the documents). Not named test_*.rb: `rake test` and the plain daemon of
# tests/test_ruby_client.py have no model server.
class TestLiveAnswer < Minitest::Test
  include RagdTest

  USER = { project_ids: [1], user_id: 7 }.freeze
  VISIBLE = ["issue:1", "issue:2", "issue:3", "wiki:1:Payroll"].freeze

  def setup
    require_daemon!
    @client = Ragd::Client.new(ADDRESS, timeout: 60)
  end

  def test_answer_streams_events_and_returns_the_answer
    events = []
    answer = @client.answer("Why does login fail since the upgrade?", filter: USER) { |e| events << e }
    assert_instance_of Ragd::AnswerContext, events.first
    assert_instance_of Ragd::AnswerDone, events.last
    deltas = events[1..-2]
    refute_empty deltas
    assert(deltas.all? { |e| e.is_a?(Ragd::AnswerDelta) })
    assert_instance_of Ragd::Answer, answer
    assert_equal deltas.map(&:text).join, answer.text
    assert_equal events.first.passages.map(&:document_id), answer.passages.map(&:document_id)
    assert(answer.passages.all? { |p| VISIBLE.include?(p.document_id) })
    assert_includes %i[cited not_supported uncited], answer.grounding
    answer.citations.each do |c|
      assert_equal answer.passages[c.passage - 1].document_id, c.document_id
    end
    assert_equal answer.citations.map(&:document_id), answer.cited_passages.map(&:document_id)
    assert_operator answer.usage.prompt_tokens, :>, 0
    assert_operator answer.timings.first_token_ms, :>, 0
  end

  def test_answer_without_a_block_and_with_no_permitted_passage
    answer = @client.answer("Why does login fail?", filter: { project_ids: [404] })
    assert_equal :no_passages, answer.grounding
    assert_empty answer.passages
    assert_equal "The passages do not support an answer.", answer.text
  end

  def test_breaking_out_cancels_the_call
    pieces = 0
    @client.answer("Why does login fail since the upgrade?", filter: USER, max_tokens: 200) do |e|
      pieces += 1 if e.is_a?(Ragd::AnswerDelta)
      break if pieces == 2
    end
    assert_equal 2, pieces
    # The client stays usable after a cancelled stream.
    assert_equal :hybrid, @client.search("Why does login fail?", filter: USER).mode
  end

  def test_search_flags_questions_as_complex
    assert @client.search("Why does login fail since the upgrade?").complex
    refute @client.search("printer jam").complex
  end

  def test_bad_input_names_the_field
    err = assert_raises(Ragd::InvalidArgument) { @client.answer("Why?", top_k: 500) }
    assert_match(/top_k/, err.message)
  end
end
