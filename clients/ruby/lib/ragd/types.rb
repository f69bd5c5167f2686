# frozen_string_literal: true

module Ragd
  # Plain Ruby values in and out of Ragd::Client: no protobuf leaks into Redmine.
  # Each mirrors the ragd.v1 message of the same name (see proto/ragd/v1/ragd.proto).

  # Input (a Hash with the same keys works too) and the document carried by a Hit.
  # updated_at: a Time (or anything with #to_time, or an ISO 8601 String).
  # tracker_id, owner_ids, private_note: what grants read (the issue's tracker; the
  # principals whose own document it is, Redmine's author and assignee; a journal
  # with private notes). For a journal they describe its issue, author_id the note's writer.
  Document = Struct.new(:id, :title, :text, :project_id, :type, :is_private, :author_id,
                        :updated_at, :version, :metadata, :viewer_ids, :tracker_id, :owner_ids,
                        :private_note, keyword_init: true)

  # One Redmine role's view (ragd.v1.Grant): documents of `types` in `project_ids`
  # (of `tracker_ids` when given) that `visibility` admits: :all (private ones too),
  # :default (not private, or the principal's own) or :own. private_notes: journals
  # with private notes are visible. A filter's grants are ORed.
  Grant = Struct.new(:types, :project_ids, :visibility, :tracker_ids, :private_notes, keyword_init: true)

  # Permission and attribute filter, applied inside the index search. Empty lists
  # mean "no restriction". With grants, visibility is decided by the grants for the
  # principal user_id + group_ids (project_ids and types only narrow further;
  # private_project_ids and all_private must be unset). Without grants, private
  # documents are hidden unless their project is in private_project_ids, user_id is
  # their author or a viewer, or all_private.
  Filter = Struct.new(:project_ids, :types, :private_project_ids, :user_id, :all_private,
                      :metadata_equals, :metadata_ranges, :updated_after, :updated_before,
                      :exclude_ids, :grants, :group_ids, keyword_init: true)

  Timings = Struct.new(:queue_ms, :tokenize_ms, :embed_ms, :search_ms, :store_ms, :total_ms,
                       :cache_hit, keyword_init: true)

  # status: :indexed, :unchanged, :stale, :deleted, :not_found, :failed or :queued.
  Ack = Struct.new(:id, :status, :version, :chunks, :error, :truncated, keyword_init: true) do
    def failed? = status == :failed
  end

  WriteResult = Struct.new(:acks, :sequence, :job_id, :timings, keyword_init: true) do
    def failed = acks.select(&:failed?)
  end

  # start/end: code-point offsets of the chunk in the (normalised) document text;
  # highlights: Ranges (code points) of matched terms within text; document: its fields,
  # its text omitted (the chunk is in text).
  Hit = Struct.new(:document_id, :chunk_id, :text, :start, :end, :score, :document,
                   :vector_score, :keyword_score, :highlights, keyword_init: true)

  # mode: the route the daemon actually took (:vector, :keyword or :hybrid).
  # complex: (AUTO) the query is a question or asks to explain/compare/summarise:
  # a caller may offer Client#answer for it.
  SearchResult = Struct.new(:hits, :mode, :timings, :complex, keyword_init: true) do
    include Enumerable

    def each(&block) = hits.each(&block)
    def document_ids = hits.map(&:document_id).uniq
  end

  CollectionStats = Struct.new(:name, :documents, :chunks, :index_kind, :index_vectors, :tombstones,
                               :sequence, :dimension, keyword_init: true)
  ModelInfo = Struct.new(:name, :dimension, :max_tokens, :provider, :sha256, keyword_init: true)
  Stats = Struct.new(:collections, :model, :version, :uptime_s, :disk_bytes, keyword_init: true)

  # Events of Client#answer, in order: one AnswerContext, AnswerDeltas, one AnswerDone.
  # passages: Ragd::Hits given to the model; passages[i] is cited as [i + 1]. Every
  # one passed the caller's filter.
  AnswerContext = Struct.new(:passages, :expanded, keyword_init: true)
  # A piece of the answer's text, as the model generates it.
  AnswerDelta = Struct.new(:text, keyword_init: true)
  # passage: the [n] cited; start/end: code points of the cited chunk in the document text.
  Citation = Struct.new(:passage, :document_id, :chunk_id, :start, :end, :score, keyword_init: true)
  TokenUsage = Struct.new(:prompt_tokens, :completion_tokens, :estimated, keyword_init: true)
  AnswerTimings = Struct.new(:expansion_ms, :retrieval_ms, :first_token_ms, :generation_ms, :total_ms,
                             keyword_init: true)
  # grounding: :cited, :not_supported (the passages do not answer), :uncited (flagged:
  # no valid citation, show it as unverified) or :no_passages (nothing permitted matched).
  AnswerDone = Struct.new(:text, :citations, :grounding, :invalid_citations, :usage, :timings, :model,
                          :finish_reason, keyword_init: true) do
    def flagged? = grounding == :uncited
  end

  # What Client#answer returns: the whole answer with its passages.
  Answer = Struct.new(:passages, :expanded, :text, :citations, :grounding, :invalid_citations, :usage, :timings,
                      :model, :finish_reason, keyword_init: true) do
    def flagged? = grounding == :uncited

    # The Ragd::Hits the answer cites, in order of first citation.
    def cited_passages = citations.map { |c| passages[c.passage - 1] }
  end
end
