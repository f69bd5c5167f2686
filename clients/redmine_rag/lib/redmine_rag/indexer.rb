# frozen_string_literal: true

module RedmineRag
  # Sends documents to ragd and keeps the books: a document ragd refuses (its
  # text empty after normalisation, too large, ...) is logged with the reason,
  # recorded as a RedmineRag::Failure and left out, and the rest of its batch is
  # sent again, so one bad document never blocks the others. A successful write
  # clears the document's failure. Ragd::Unavailable and ResourceExhausted are
  # not handled here: they end the call, and the job retries with backoff.
  class Indexer
    # acks: Ragd::Ack of every document written; refused: [[document, reason], ...].
    Outcome = Struct.new(:acks, :refused, keyword_init: true) do
      def count(status) = acks.count { |a| a.status == status }
    end

    # "documents[3].text: empty" -> 3
    REFUSED_AT = /\Adocuments\[(\d+)\]/

    def initialize(client: RedmineRag.client, timeout: nil)
      @client = client
      @timeout = timeout
    end

    def upsert(docs)
      pending = docs.dup
      acks = []
      refused = []
      until pending.empty?
        begin
          result = @client.upsert(pending, timeout: @timeout)
        rescue Ragd::InvalidArgument => e
          at = self.class.refused_at(e, pending.size)
          raise unless at # not about one document: a bug, surface it

          refused << [pending.delete_at(at), e.details.to_s]
          next
        end
        result.acks.each_with_index { |ack, i| ack.failed? ? refused << [pending[i], ack.error] : acks << ack }
        break
      end
      settle(acks.map(&:id), refused)
      Outcome.new(acks: acks, refused: refused)
    end

    # versions: { doc_id => version } (versioned deletes leave tombstones, so an
    # older write arriving later cannot bring the document back).
    def delete(versions)
      return Outcome.new(acks: [], refused: []) if versions.empty?

      acks = versions.each_slice(500).flat_map do |slice|
        @client.delete(slice.map(&:first), versions: slice.to_h, timeout: @timeout).acks
      end
      Failure.clear!(versions.keys)
      Outcome.new(acks: acks, refused: [])
    end

    # The document an INVALID_ARGUMENT names, if it names one of `size`.
    def self.refused_at(error, size)
      m = REFUSED_AT.match(error.details.to_s)
      m && m[1].to_i < size ? m[1].to_i : nil
    end

    def self.refuse(doc, reason)
      RedmineRag.log(:warn, "ragd refused #{doc[:id]}: #{reason}")
      Failure.record!(doc[:id], state: 'refused', reason: reason, project_id: doc[:project_id])
    end

    private

    def settle(written_ids, refused)
      Failure.clear!(written_ids) unless written_ids.empty?
      refused.each { |doc, reason| self.class.refuse(doc, reason) }
    end
  end
end
