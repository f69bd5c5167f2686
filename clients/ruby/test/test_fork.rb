# frozen_string_literal: true

require "test_helper"

# Fork as Puma, Unicorn and Passenger do it, against the real daemon, each
# scenario in a fresh interpreter bounded by a timeout: never a hang.
class TestFork < Minitest::Test
  include RagdTest

  SCENARIO = File.expand_path("fork_scenario.rb", __dir__)
  CHILDREN = 4

  def setup
    require_daemon!
    @collection = new_collection
    Ragd::Client.new(ADDRESS, timeout: 60, collection: @collection).upsert(
      [{ id: "issue:1", title: "Printer jam", text: "The office printer jams on every second page." },
       { id: "issue:2", title: "VPN", text: "The VPN drops every hour." }]
    )
  end

  def scenario(mode)
    status, output = run_ruby(SCENARIO, mode, ADDRESS, @collection, CHILDREN, timeout: 90)
    assert status, "the #{mode} scenario hung and was killed:\n#{output}"
    assert status.success?, "the #{mode} scenario failed (#{status.inspect}):\n#{output}"
    lines = output.lines.filter_map { |l| JSON.parse(l) if l.start_with?("{") }
    children = lines.select { |l| l.key?("child") }
    summary = lines.find { |l| l.key?("parent") }
    assert summary, output
    assert_equal CHILDREN, children.size, output
    assert_equal [0] * CHILDREN, summary["exits"], output
    [children, summary, output]
  end

  def test_children_of_a_parent_that_made_no_call_all_search
    children, summary, output = scenario("configured")
    children.each do |c|
      assert_equal "ok", c["outcome"], output
      assert_equal [2, 2, 2], c["hits"], output # both documents, from each of 3 threads
    end
    assert_equal 2, summary["parent_search_hits"], output
  end

  def test_children_of_a_parent_that_called_work_or_fail_fast_and_clearly
    children, summary, output = scenario("called")
    children.each do |c|
      next if c["outcome"] == "ok" # an installed grpc with working fork support

      assert_equal "Ragd::ForkError", c["outcome"], output
      assert_match(/make no call until the worker runs/, c["message"])
      assert_operator c["seconds"], :<, 5, "the refusal must be immediate:\n#{output}"
    end
    assert_equal 2, summary["parent_search_hits"], output # and the parent itself still works
  end
end
