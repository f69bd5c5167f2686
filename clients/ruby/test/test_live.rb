# frozen_string_literal: true

require "test_helper"

# Against the real daemon (RAGD_ADDRESS): upsert, search with filters, similar,
# delete, versions, stats, errors, and a stream of 1,000 documents with acks.
class TestLive < Minitest::Test
  include RagdTest

  DOCS = [
    { id: "issue:1", title: "Login fails with LDAP", text: "Users cannot sign in since the LDAP upgrade.",
      project_id: 1, type: "issue", author_id: 7, version: 1, updated_at: Time.utc(2026, 1, 10),
      metadata: { "tracker" => "bug" } },
    { id: "issue:2", title: "Printer jam", text: "The office printer jams on every second page.",
      project_id: 1, type: "issue", author_id: 8, version: 1, updated_at: Time.utc(2026, 2, 10),
      metadata: { "tracker" => "support" } },
    { id: "issue:3", title: "Password reset mail", text: "The password reset e-mail never arrives, so users cannot log in.",
      project_id: 2, type: "issue", author_id: 8, version: 1, updated_at: Time.utc(2026, 3, 10) },
    { id: "issue:4", title: "Secret: SSO outage", text: "Single sign-on is down for the finance team; authentication fails.",
      project_id: 1, type: "issue", is_private: true, author_id: 7, viewer_ids: [9], version: 1,
      updated_at: Time.utc(2026, 4, 10) },
    { id: "wiki:1:Login", title: "Login", text: "How to sign in with your LDAP account.", project_id: 1, type: "wiki" }
  ].freeze

  def setup
    require_daemon!
    @collection = new_collection
    @client = Ragd::Client.new(ADDRESS, timeout: 60, collection: @collection)
    @result = @client.upsert(DOCS)
  end

  # Ids of every hit for a query, with filter keys as keywords. Vector mode: every
  # permitted document is a candidate, so the set is exactly what the filter lets through.
  def ids(query: "cannot log in, authentication problem", **filter)
    @client.search(query, top_k: 10, filter: filter, mode: :vector).map(&:document_id).sort
  end

  def test_upsert_acks
    assert_equal DOCS.map { |d| d[:id] }, @result.acks.map(&:id)
    assert_equal [:indexed] * DOCS.size, @result.acks.map(&:status)
    assert @result.acks.all? { |a| a.chunks >= 1 }
    assert_operator @result.sequence, :>, 0
    assert_kind_of Ragd::Timings, @result.timings
    # One document, as a Hash or a Ragd::Document, needs no array.
    assert_equal ["one:1"], @client.upsert({ id: "one:1", text: "a single note" }).acks.map(&:id)
    assert_equal [:indexed], @client.upsert(Ragd::Document.new(id: "one:2", text: "another")).acks.map(&:status)
  end

  def test_search_returns_plain_ruby_objects
    result = @client.search("cannot sign in with LDAP", top_k: 3, mode: :vector)
    assert_instance_of Ragd::SearchResult, result
    assert_equal :vector, result.mode
    hit = result.first
    assert_instance_of Ragd::Hit, hit
    assert_equal "issue:1", hit.document_id
    assert_instance_of Ragd::Document, hit.document
    assert_equal ["Login fails with LDAP", 1, "issue", 7, 1], [hit.document.title, hit.document.project_id,
                                                               hit.document.type, hit.document.author_id, hit.document.version]
    assert_equal Time.utc(2026, 1, 10), hit.document.updated_at
    assert_equal({ "tracker" => "bug" }, hit.document.metadata)
    assert_includes hit.text, "LDAP upgrade" # the chunk; hits do not repeat the whole text
    assert_operator hit.score, :>, 0
    assert_operator hit.end, :>, hit.start
    assert_operator result.timings.total_ms, :>, 0
  end

  def test_filters
    everything = %w[issue:1 issue:2 issue:3 wiki:1:Login]
    assert_equal everything, ids # the private issue stays hidden without a reason to show it
    assert_equal %w[issue:1 issue:2 wiki:1:Login], ids(project_ids: [1])
    assert_equal %w[issue:3], @client.search("log in", filter: Ragd::Filter.new(project_ids: [2]), mode: :vector).document_ids
    assert_equal %w[issue:1 issue:2 issue:3], ids(types: ["issue"])
    # Private: visible in listed private projects, to the author, to viewers, or with all_private.
    assert_equal %w[issue:1 issue:2 issue:4 wiki:1:Login], ids(project_ids: [1], private_project_ids: [1])
    assert_equal %w[issue:1 issue:2 wiki:1:Login], ids(project_ids: [1], private_project_ids: [2])
    assert_equal %w[issue:1 issue:2 issue:4 wiki:1:Login], ids(project_ids: [1], user_id: 7) # author
    assert_equal %w[issue:1 issue:2 issue:4 wiki:1:Login], ids(project_ids: [1], user_id: 9) # viewer (assignee)
    assert_equal %w[issue:1 issue:2 wiki:1:Login], ids(project_ids: [1], user_id: 8)
    assert_includes ids(all_private: true), "issue:4"
    # Attributes.
    assert_equal %w[issue:1], ids(metadata_equals: { "tracker" => "bug" })
    assert_equal %w[issue:2 issue:3], ids(types: ["issue"], updated_after: Time.utc(2026, 2, 1),
                                          updated_before: Time.utc(2026, 3, 31))
    assert_equal %w[issue:2 issue:3 wiki:1:Login], ids(exclude_ids: ["issue:1"])
  end

  def test_top_k_and_options
    assert_equal 2, @client.search("login", top_k: 2).hits.size
    result = @client.search("login", top_k: 10, group_by_document: true)
    assert_equal result.document_ids, result.map(&:document_id)
    assert_empty @client.search("login", min_score: 0.99, mode: :vector).hits # cosine similarity
    err = assert_raises(Ragd::InvalidArgument) { @client.search("login", top_k: 1_000_000) }
    assert_match(/top_k/, err.message)
  end

  def test_similar_excludes_the_document_itself
    result = @client.similar("issue:1", top_k: 3, filter: { project_ids: [1, 2] })
    refute_includes result.document_ids, "issue:1"
    refute_empty result.hits
    assert_raises(Ragd::NotFound) { @client.similar("issue:404") }
  end

  def test_versions
    older = DOCS[0].merge(version: 0 + 1, text: "changed text")
    assert_equal [:unchanged], @client.upsert([older]).acks.map(&:status)
    assert_equal [:indexed], @client.upsert([DOCS[0].merge(version: 3, text: "LDAP login now works.")]).acks.map(&:status)
    assert_equal [:stale], @client.upsert([DOCS[0].merge(version: 2)]).acks.map(&:status)
  end

  def test_delete
    assert_equal %i[deleted not_found], @client.delete(["issue:2", "issue:404"]).acks.map(&:status)
    refute_includes ids, "issue:2"
    # A versioned delete leaves a tombstone: an older upsert arriving later cannot resurrect the issue.
    assert_equal [:deleted], @client.delete(["issue:3"], versions: { "issue:3" => 5 }).acks.map(&:status)
    assert_equal [:stale], @client.upsert([DOCS[2].merge(version: 4)]).acks.map(&:status)
    refute_includes ids, "issue:3"
    assert_equal [:indexed], @client.upsert([DOCS[2].merge(version: 6)]).acks.map(&:status)
    assert_includes ids, "issue:3"
  end

  def test_bad_input_names_the_field_and_writes_nothing
    err = assert_raises(Ragd::InvalidArgument) do
      @client.upsert([{ id: "ok:1", text: "fine" }, { id: "bad:1", text: "   " }])
    end
    assert_match(/documents\[1\]\.text/, err.message)
    assert_equal GRPC::Core::StatusCodes::INVALID_ARGUMENT, err.code
    refute_includes ids(query: "fine"), "ok:1"
    assert_raises(Ragd::InvalidArgument) { @client.search("x", collection: "rb_never_written") }
  end

  def test_stats
    stats = @client.stats(@collection)
    coll = stats.collections.find { |c| c.name == @collection }
    assert_equal DOCS.size, coll.documents
    assert_equal 384, coll.dimension
    assert_equal 384, stats.model.dimension
    refute_empty stats.version
    assert_operator stats.uptime_s, :>, 0
    assert_operator @client.stats.collections.size, :>=, 1 # every collection
  end

  def test_list_documents_pages_through_ids_and_versions
    @client.delete(["issue:2"], versions: { "issue:2" => 9 }) # a tombstone is not listed
    all = @client.list_documents(page_size: 2).to_a
    assert_equal (DOCS.map { |d| d[:id] } - ["issue:2"]).sort, all.map(&:id)
    one = all.find { |d| d.id == "issue:4" }
    assert_equal ["issue", 1, 1, Time.utc(2026, 4, 10)], [one.type, one.project_id, one.version, one.updated_at]
    assert_operator one.chunks, :>=, 1
    assert_equal %w[issue:1 issue:4], @client.list_documents(types: ["issue"], project_ids: [1]).map(&:id)
    assert_raises(Ragd::InvalidArgument) { @client.list_documents(page_size: 20_000).first }
  end

  def test_a_stream_of_a_thousand_documents_with_acks
    docs = (1..1000).lazy.map do |i|
      { id: "note:#{i}", title: "Note #{i}", text: "Maintenance note number #{i} about server #{i % 17}.",
        project_id: 1 + (i % 3), type: "note", version: 1 }
    end
    acks = []
    batches = @client.index_stream(docs, batch_size: 100, timeout: 600) { |r| acks.concat(r.acks) }
    assert_equal 10, batches
    assert_equal (1..1000).map { |i| "note:#{i}" }, acks.map(&:id)
    assert_equal [:indexed], acks.map(&:status).uniq
    coll = @client.stats(@collection).collections.find { |c| c.name == @collection }
    assert_equal 1000 + DOCS.size, coll.documents
    hits = @client.search("maintenance note about server 5", top_k: 5, filter: { types: ["note"], project_ids: [1, 2, 3] })
    assert_equal 5, hits.hits.size
    # Streamed again, unchanged: every ack says so.
    again = @client.index_stream(docs.first(250), batch_size: 250, timeout: 600)
    assert_equal [:unchanged], again.flat_map(&:acks).map(&:status).uniq
  end
end
