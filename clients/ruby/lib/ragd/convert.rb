# frozen_string_literal: true

require "time"

module Ragd
  # Ruby values <-> ragd.v1 messages. Internal to the gem: the only file besides
  # client.rb that touches the generated classes.
  module Convert
    DOCUMENT_KEYS = Document.members.freeze
    FILTER_KEYS = Filter.members.freeze
    GRANT_KEYS = Grant.members.freeze
    VISIBILITIES = { all: :VISIBILITY_ALL, default: :VISIBILITY_DEFAULT, own: :VISIBILITY_OWN }.freeze
    MODES = { auto: :SEARCH_MODE_AUTO, vector: :SEARCH_MODE_VECTOR,
              keyword: :SEARCH_MODE_KEYWORD, hybrid: :SEARCH_MODE_HYBRID }.freeze

    module_function

    def document(doc)
      h = fields(doc, DOCUMENT_KEYS, "document")
      msg = V1::Document.new(
        id: h[:id].to_s, title: h[:title].to_s, text: h[:text].to_s, type: h[:type].to_s,
        project_id: h[:project_id].to_i, author_id: h[:author_id].to_i, version: h[:version].to_i,
        is_private: h[:is_private] ? true : false,
        metadata: strings(h[:metadata]), viewer_ids: ints(h[:viewer_ids]),
        tracker_id: h[:tracker_id].to_i, owner_ids: ints(h[:owner_ids]), private_note: h[:private_note] ? true : false
      )
      msg.updated_at = timestamp(h[:updated_at]) if h[:updated_at]
      msg
    end

    def filter(flt)
      return nil if flt.nil?

      h = fields(flt, FILTER_KEYS, "filter")
      msg = V1::Filter.new(
        project_ids: ints(h[:project_ids]), private_project_ids: ints(h[:private_project_ids]),
        types: Array(h[:types]).map(&:to_s), user_id: h[:user_id].to_i, all_private: h[:all_private] ? true : false,
        metadata_equals: strings(h[:metadata_equals]), exclude_ids: Array(h[:exclude_ids]).map(&:to_s),
        metadata_ranges: Array(h[:metadata_ranges]).map { |r| metadata_range(r) },
        grants: Array(h[:grants]).map { |g| grant(g) }, group_ids: ints(h[:group_ids])
      )
      msg.updated_after = timestamp(h[:updated_after]) if h[:updated_after]
      msg.updated_before = timestamp(h[:updated_before]) if h[:updated_before]
      msg
    end

    def grant(value)
      h = fields(value, GRANT_KEYS, "grant")
      V1::Grant.new(types: Array(h[:types]).map(&:to_s), project_ids: ints(h[:project_ids]),
                    visibility: visibility(h[:visibility]), tracker_ids: ints(h[:tracker_ids]),
                    private_notes: h[:private_notes] ? true : false)
    end

    # :all, :default, :own (or their Strings); an Integer passes through for the daemon to judge;
    # nil stays unset, which the daemon refuses (a grant must say what it shows).
    def visibility(value)
      return 0 if value.nil?
      return value if value.is_a?(Integer)

      VISIBILITIES.fetch(value.to_s.downcase.to_sym) do
        raise ArgumentError, "grant visibility must be one of #{VISIBILITIES.keys.join(', ')}, not #{value.inspect}"
      end
    end

    def mode(name)
      MODES.fetch(name.to_sym) { raise ArgumentError, "mode must be one of #{MODES.keys.join(', ')}, not #{name.inspect}" }
    end

    def timestamp(value)
      time = case value
             when Time then value
             when String then Time.iso8601(value) # strict: a zone-less string would be guessed as local time
             when Numeric then Time.at(value)
             else
               raise ArgumentError, "not a time: #{value.inspect}" unless value.respond_to?(:to_time)

               value.to_time # Date, DateTime, ActiveSupport::TimeWithZone
             end
      Google::Protobuf::Timestamp.new(seconds: time.to_i, nanos: time.nsec)
    end

    def time(ts)
      ts && Time.at(ts.seconds, ts.nanos, :nsec).utc
    end

    def write_result(resp)
      WriteResult.new(acks: resp.acks.map { |a| ack(a) }, sequence: resp.sequence,
                      job_id: resp.respond_to?(:job_id) ? resp.job_id : "",
                      timings: timings(resp.respond_to?(:timings) ? resp.timings : nil))
    end

    def ack(a)
      Ack.new(id: a.id, status: enum_name(a.status, "ACK_STATUS_"), version: a.version, chunks: a.chunks,
              error: a.error, truncated: a.truncated)
    end

    def search_result(resp)
      SearchResult.new(hits: hits(resp.hits), mode: enum_name(resp.mode, "SEARCH_MODE_"), timings: timings(resp.timings),
                       complex: resp.complex)
    end

    def hits(list)
      list.map do |h|
        Hit.new(document_id: h.document_id, chunk_id: h.chunk_id, text: h.text, start: h.start, end: h.end,
                score: h.score, document: h.document && document_value(h.document),
                vector_score: h.vector_score, keyword_score: h.keyword_score,
                highlights: h.highlights.map { |s| s.start...s.end })
      end
    end

    ANSWER_OPTIONS = %i[top_k max_tokens temperature language group_by_document].freeze

    def answer_request(collection, question, filter, options)
      o = fields(options, ANSWER_OPTIONS, "answer option")
      req = V1::AnswerRequest.new(collection: collection, question: question.to_s, top_k: o[:top_k].to_i,
                                  filter: filter(filter), max_tokens: o[:max_tokens].to_i, language: o[:language].to_s,
                                  group_by_document: o[:group_by_document] ? true : false)
      req.temperature = o[:temperature].to_f unless o[:temperature].nil?
      req
    end

    def answer_event(resp)
      case resp.event
      when :delta then AnswerDelta.new(text: resp.delta)
      when :context then AnswerContext.new(passages: hits(resp.context.passages), expanded: resp.context.expanded)
      when :done then answer_done(resp.done)
      end
    end

    def answer_done(d)
      u = d.usage
      t = d.timings
      AnswerDone.new(
        text: d.text, grounding: enum_name(d.grounding, "GROUNDING_"), invalid_citations: d.invalid_citations.to_a,
        citations: d.citations.map do |c|
          Citation.new(passage: c.passage, document_id: c.document_id, chunk_id: c.chunk_id, start: c.start,
                       end: c.end, score: c.score)
        end,
        usage: TokenUsage.new(prompt_tokens: u&.prompt_tokens.to_i, completion_tokens: u&.completion_tokens.to_i,
                              estimated: u ? u.estimated : false),
        timings: AnswerTimings.new(expansion_ms: t&.expansion_ms.to_f, retrieval_ms: t&.retrieval_ms.to_f,
                                   first_token_ms: t&.first_token_ms.to_f, generation_ms: t&.generation_ms.to_f,
                                   total_ms: t&.total_ms.to_f),
        model: d.model, finish_reason: d.finish_reason
      )
    end

    def document_value(d)
      Document.new(id: d.id, title: d.title, text: d.text, project_id: d.project_id, type: d.type,
                   is_private: d.is_private, author_id: d.author_id, updated_at: time(d.updated_at),
                   version: d.version, metadata: d.metadata.to_h, viewer_ids: d.viewer_ids.to_a,
                   tracker_id: d.tracker_id, owner_ids: d.owner_ids.to_a, private_note: d.private_note)
    end

    def stats(resp)
      colls = resp.collections.map do |c|
        CollectionStats.new(name: c.name, documents: c.documents, chunks: c.chunks, index_kind: c.index_kind,
                            index_vectors: c.index_vectors, tombstones: c.tombstones, sequence: c.sequence,
                            dimension: c.dimension)
      end
      m = resp.model
      model = m && ModelInfo.new(name: m.name, dimension: m.dimension, max_tokens: m.max_tokens,
                                 provider: m.provider, sha256: m.sha256)
      Stats.new(collections: colls, model: model, version: resp.version, uptime_s: resp.uptime_s,
                disk_bytes: resp.disk_bytes)
    end

    def timings(t)
      return Timings.new if t.nil?

      Timings.new(queue_ms: t.queue_ms, tokenize_ms: t.tokenize_ms, embed_ms: t.embed_ms, search_ms: t.search_ms,
                  store_ms: t.store_ms, total_ms: t.total_ms, cache_hit: t.cache_hit)
    end

    # A Struct or a Hash with Symbol or String keys; unknown keys are an error
    # (a typo like :project would otherwise silently drop a permission field).
    def fields(value, keys, what)
      h = value.to_h.transform_keys(&:to_sym)
      unknown = h.keys - keys
      raise ArgumentError, "unknown #{what} field(s): #{unknown.join(', ')}" unless unknown.empty?

      h
    end

    def metadata_range(r)
      h = r.to_h.transform_keys(&:to_sym)
      msg = V1::MetadataRange.new(key: h.fetch(:key).to_s)
      msg.gte = h[:gte].to_f unless h[:gte].nil?
      msg.lte = h[:lte].to_f unless h[:lte].nil?
      msg
    end

    def ints(list) = Array(list).compact.map(&:to_i)

    def strings(map) = (map || {}).to_h { |k, v| [k.to_s, v.to_s] }

    # :ACK_STATUS_INDEXED -> :indexed; an Integer (a value newer than these stubs) stays as is.
    def enum_name(value, prefix)
      value.is_a?(Symbol) ? value.to_s.delete_prefix(prefix).downcase.to_sym : value
    end
  end
end
